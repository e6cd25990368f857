// duetd's command line: CLI11 turns argv (and --config files) into the C
// core's duet_options_t. Kept in one translation unit: CLI11 is slow to compile.
#pragma once

#include <cstdint>
#include <deque>
#include <ostream>
#include <string>
#include <vector>

#include "duet/plugin.h"
#include "exit_code.h"
#include "options.h"

namespace duet {

// A top-level flag a plugin's option declares (duet_plugin_option_t.flag):
// "--FLAG VALUE" means "--plugin-opt PLUGIN.KEY=VALUE".
struct PluginFlag {
  std::string plugin, key, flag, help, value_name;
  std::uint32_t flags = 0;  // DUET_OPTION_*
};

// A command a plugin offers: "duetd NAME ARGS" runs it instead of the server.
struct PluginCommand {
  std::string plugin, name, help;
  int (*run)(int argc, const char *const *argv, duet_write_fn write, void *out, void *err) = nullptr;
};

// What the bundled plugins declare for the command line, read from their
// descriptors before parsing (cli/bundled.cpp).
struct PluginDeclarations {
  std::vector<PluginFlag> flags;
  std::vector<PluginCommand> commands;
};

struct CliOptions {
  std::string address;
  int port = 8443;
  bool no_tls = false;
  std::string cert, key, state_dir, web_root;
  std::vector<std::string> mount_specs;
  std::size_t max_message_bytes = 64 * 1024;
  std::size_t max_queued_bytes = 1024 * 1024;
  std::size_t max_queued_bytes_total = 64 * 1024 * 1024;
  std::size_t max_connections = 10000;
  std::size_t max_connections_per_ip = 32;
  unsigned max_messages_per_second = 50;
  double open_timeout = 10;
  double drain_timeout = 300;
  unsigned http_timeout = 10;
  unsigned max_header_bytes = 8192;
  bool no_health = false;
  bool no_metrics = false;
  std::string admin_listen;
  std::string admin_token_file;
  std::string tls_min = "1.2";
  unsigned hsts = 0;
  int http_redirect_port = 0;
  std::string acme_webroot;
  std::vector<std::string> allow_origins;
  bool allow_any_origin = false;
  std::vector<std::string> plugins;
  bool no_default_plugins = false;
  std::vector<std::string> plugin_dirs;
  std::vector<std::string> plugin_opt_specs;
  std::vector<std::string> plugin_stage_specs;  // --plugin-stage NAME=STAGE
  bool list_plugins = false;
  std::string node_id;
  std::string log_level = "info";
  std::string workers;        // --workers N|auto; empty: one process
  unsigned worker_index = 0;  // --worker-index K: set by the supervisor for worker K
  unsigned worker_count = 0;  // --worker-count N: set by the supervisor too

  // What the C core reads; points into the strings above.
  duet_options_t c{};

private:
  friend struct CliParser;
  // Values given to the plugins' shorthand flags, one entry per flag.
  struct ShorthandValues {
    std::vector<const PluginFlag *> flags;  // the options it sets: one, or several declared alike
    std::string one;
    std::vector<std::string> many;
  };
  std::deque<ShorthandValues> shorthands_;
  std::string admin_host_;
  std::string admin_token_;  // the file's contents
  unsigned worker_count_ = 0;
  std::vector<std::string> mount_urls_, mount_dirs_, opt_plugins_, opt_keys_, opt_values_, load_list_, stage_names_;
  std::vector<duet_mount_t> mounts_;
  std::vector<duet_plugin_opt_t> plugin_opts_;
  std::vector<duet_plugin_stage_t> plugin_stages_;
  std::vector<const char *> load_ptrs_, dir_ptrs_, origin_ptrs_;
};

// What the command line asks for: run duetd with o.c, or leave with an
// exit code (0 after --help or --version, DUET_EXIT_USAGE for a usage error,
// whose message went to err, or a plugin command's own exit code).
struct CliOutcome {
  bool run = false;
  int exit_code = DUET_EXIT_OK;  // when not run
};

// Parses argv. The plugins' shorthand flags and commands come from plugins.
CliOutcome parse_command_line(int argc, const char *const *argv, CliOptions &o, const PluginDeclarations &plugins,
                              std::ostream &out, std::ostream &err);
// The same without any plugin's flags or commands.
CliOutcome parse_command_line(int argc, const char *const *argv, CliOptions &o, std::ostream &out, std::ostream &err);

// The stage a --plugin-stage value names ("admission"), or DUET_STAGE_UNSET.
duet_stage_t stage_named(const std::string &name);

// The plugins loaded when no --no-default-plugins is given, in order.
std::vector<std::string> bundled_plugins();

}  // namespace duet
