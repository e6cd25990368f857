#pragma once
// The parser shared by the option tables (options.cpp) and the checks that
// turn parsed values into duet_options_t (parse.cpp).

#include <optional>
#include <ostream>

#include <CLI/CLI.hpp>

#include "cli/options.hpp"

namespace duet {

// One parse: the CLI11 app, the options it fills, and the plugins'
// declarations it offers as flags and commands.
struct CliParser {
  CliOptions &o;
  const PluginDeclarations &plugins;
  std::ostream &out, &err;
  CLI::App app;

  CliParser(CliOptions &options, const PluginDeclarations &declarations, std::ostream &out_, std::ostream &err_)
      : o(options), plugins(declarations), out(out_), err(err_),
        app("duetd: a small, fast signaling server and web client for 1:1 WebRTC video calls.\n"
            "With no options it serves the web client and WebSocket signaling on https://localhost:8443/\n"
            "with a self-signed development certificate made on first run.",
            "duetd") {}

  void add_general_options();
  void add_tls_options();
  void add_limit_options();
  void add_plugin_options();
  void add_plugin_flags();
  void add_worker_options();
  std::optional<int> run_command(int argc, const char *const *argv);
  // Each check says why in err and returns false for a usage error.
  bool check_mounts();
  bool check_admin_listen();
  bool check_admin_token();
  bool check_combinations();
  bool check_workers();
  void collect_plugin_opts();
  void fill_c_options();
  CliOutcome parse(int argc, const char *const *argv);
};

}  // namespace duet
