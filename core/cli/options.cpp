#include "cli/options.hpp"

#include <climits>
#include <cstdlib>
#include <limits>
#include <optional>
#include <sstream>

#include <sys/stat.h>

#include <CLI/CLI.hpp>

#include "cli/worker_count.hpp"
#include "duet_build_config.h"

namespace duet {

std::vector<std::string> bundled_plugins() {
  std::vector<std::string> names;
  std::istringstream list(DUET_BUNDLED_PLUGINS);
  for (std::string name; std::getline(list, name, ',');)
    if (!name.empty())
      names.push_back(name);
  return names;
}

duet_stage_t stage_named(const std::string &name) {
  for (duet_stage_t stage : {DUET_STAGE_TRANSPORT, DUET_STAGE_ADMISSION, DUET_STAGE_ROUTING, DUET_STAGE_OBSERVER})
    if (name == duet_stage_name(stage))
      return stage;
  return DUET_STAGE_UNSET;
}

namespace {

// "/extra=DIR": the URL must be a clean absolute path other than "/".
bool has_control_chars(const std::string &s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f)
      return true;
  return false;
}

std::string check_mount(const std::string &spec) {
  if (has_control_chars(spec))
    return "control characters (NUL included) are not allowed";
  auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    return "expected /URL=DIR, e.g. --mount /media=/srv/media";
  std::string url = spec.substr(0, eq);
  if (url[0] != '/')
    return "the URL part must start with '/'";
  while (url.size() > 1 && url.back() == '/')
    url.pop_back();
  if (url == "/")
    return "'/' is the web root: use --web-root for it";
  std::istringstream parts(url.substr(1));
  for (std::string part; std::getline(parts, part, '/');)
    if (part.empty() || part[0] == '.')
      return "the URL part must not contain empty, '.' or '..' segments or dotfiles";
  return {};
}

// "plugin=stage"
std::string check_plugin_stage(const std::string &spec) {
  auto eq = spec.find('=');
  if (has_control_chars(spec) || eq == std::string::npos || eq == 0 ||
      stage_named(spec.substr(eq + 1)) == DUET_STAGE_UNSET)
    return "expected PLUGIN=STAGE with STAGE one of transport, admission, routing or observer, e.g. "
           "--plugin-stage allowlist=admission";
  return {};
}

// "plugin.key=value"
std::string check_plugin_opt(const std::string &spec) {
  if (has_control_chars(spec))
    return "control characters (NUL included) are not allowed";
  auto dot = spec.find('.');
  auto eq = spec.find('=');
  if (dot == std::string::npos || eq == std::string::npos || dot == 0 || dot + 1 >= eq)
    return "expected PLUGIN.KEY=VALUE, e.g. --plugin-opt NAME.takeover=refuse (--list-plugins shows them)";
  return {};
}

}  // namespace

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
  bool check_combinations();
  bool check_workers();
  void collect_plugin_opts();
  void fill_c_options();
  CliOutcome parse(int argc, const char *const *argv);
};

void CliParser::add_general_options() {
  char state_buf[PATH_MAX];
  const std::string default_state = duet__paths_default_state_dir(state_buf, sizeof state_buf);
  app.set_version_flag("--version", "duetd " DUET_VERSION " (plugin ABI " + std::to_string(DUET_ABI_MAJOR) + "." +
                                        std::to_string(DUET_ABI_MINOR) + ")");
  app.set_config("--config", "",
                 "Read options from FILE (TOML/INI: one 'name = value' per line, names as the long options)");
  app.allow_config_extras(CLI::config_extras_mode::error);  // a typo in a config file is an error, not a no-op
  app.get_formatter()->column_width(34);

  app.add_option("--address", o.address, "Address to listen on (default: every address, IPv4 and IPv6)");
  app.add_option("--port", o.port, "TCP port to listen on; 0 picks a free one (it is logged)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--state-dir", o.state_dir,
                 "Folder for the development certificate and other state (default: " + default_state + ")");
  app.add_option("--web-root", o.web_root,
                 "Folder served at / (default: " + std::string(duet__paths_default_web_root()) + ")")
      ->check(CLI::ExistingDirectory);
  app.add_option("--mount", o.mount_specs, "Also serve DIR at /URL, as /URL=DIR (repeatable)")
      ->type_name("/URL=DIR")
      ->check(CLI::Validator(check_mount, "/URL=DIR", "mount"));
  app.add_flag("--no-health", o.no_health, "Do not serve GET /healthz");
  app.add_flag("--no-metrics", o.no_metrics, "Do not serve GET /metrics (Prometheus text format)");
  app.add_option("--admin-listen", o.admin_listen,
                 "Serve /healthz and /metrics on this plain-HTTP ADDRESS:PORT only, not on the main port")
      ->type_name("ADDR:PORT");
  app.add_option("--log-level", o.log_level, "How much to log")
      ->check(CLI::IsMember({"error", "warn", "info", "debug"}))
      ->capture_default_str();
}

void CliParser::add_tls_options() {
  auto *cert = app.add_option("--cert", o.cert, "TLS certificate chain (PEM); needs --key")->check(CLI::ExistingFile);
  auto *key = app.add_option("--key", o.key, "TLS private key (PEM); needs --cert; must not lie in a served folder")
                  ->check(CLI::ExistingFile);
  cert->needs(key);
  key->needs(cert);
  auto *no_tls =
      app.add_flag("--no-tls", o.no_tls, "Plain HTTP and WebSocket, for running behind a TLS reverse proxy only");
  no_tls->excludes(cert)->excludes(key);
  app.add_option("--tls-min", o.tls_min, "Oldest TLS version accepted: 1.2 or 1.3")
      ->check(CLI::IsMember({"1.2", "1.3"}))
      ->capture_default_str();
  app.add_option("--hsts", o.hsts,
                 "Send Strict-Transport-Security with this max-age in seconds (0: off; 31536000 is a year)")
      ->check(CLI::Range(0u, 63072000u))
      ->capture_default_str();
  app.add_option("--http-redirect-port", o.http_redirect_port,
                 "Also listen for plain HTTP on this port, only to redirect to HTTPS (and serve ACME challenges)")
      ->check(CLI::Range(1, 65535));
  app.add_option("--acme-webroot", o.acme_webroot,
                 "Serve DIR/.well-known/acme-challenge/ on the redirect port, for certbot --webroot -w DIR")
      ->check(CLI::ExistingDirectory)
      ->type_name("DIR");
  auto *origins = app.add_option("--allow-origin", o.allow_origins,
                                 "Also accept WebSockets from this page origin, e.g. https://app.example.org "
                                 "(repeatable; the server's own origin is always accepted)");
  app.add_flag("--allow-any-origin", o.allow_any_origin,
               "Accept WebSockets from pages of any origin (turns off the cross-site check)")
      ->excludes(origins);
}

void CliParser::add_limit_options() {
  using Size = std::size_t;
  app.add_option("--max-message-bytes", o.max_message_bytes,
                 "Largest signaling message accepted; larger ones get a too-large error")
      ->check(CLI::Range(Size{256}, Size{16 * 1024 * 1024}))
      ->capture_default_str();
  app.add_option("--max-queued-bytes", o.max_queued_bytes,
                 "Bytes that may wait for one slow client before it is disconnected")
      ->check(CLI::Range(Size{4096}, Size{1024 * 1024 * 1024}))
      ->capture_default_str();
  app.add_option("--max-queued-bytes-total", o.max_queued_bytes_total,
                 "Bytes that may wait for all slow clients together; past it the clients holding the most are "
                 "disconnected (bounds memory on a small board)")
      ->check(CLI::Range(Size{4096}, std::numeric_limits<Size>::max()))
      ->capture_default_str();
  app.add_option("--max-connections", o.max_connections,
                 "WebSocket connections in all; more get a server-full error and are closed")
      ->check(CLI::Range(Size{1}, Size{10000000}))
      ->capture_default_str();
  app.add_option("--max-connections-per-ip", o.max_connections_per_ip,
                 "WebSocket connections from one address; more get a too-many-connections error")
      ->check(CLI::Range(Size{1}, Size{10000000}))
      ->capture_default_str();
  app.add_option("--max-messages-per-second", o.max_messages_per_second,
                 "Messages one connection may send per second (bursts of twice that); more get rate-limited")
      ->check(CLI::Range(1u, 100000u))
      ->capture_default_str();
  app.add_option("--open-timeout", o.open_timeout,
                 "Seconds a new WebSocket has to send its first accepted message (open) before it is closed")
      ->check(CLI::Range(0.05, 3600.0))
      ->capture_default_str();
  app.add_option("--http-timeout", o.http_timeout,
                 "Seconds for a TLS handshake and for HTTP request headers to arrive (slowloris)")
      ->check(CLI::Range(1u, 3600u))
      ->capture_default_str();
  app.add_option("--max-header-bytes", o.max_header_bytes, "Largest HTTP request header block accepted")
      ->check(CLI::Range(1024u, 65535u))
      ->capture_default_str();
}

void CliParser::add_plugin_options() {
  std::string bundled;
  for (const auto &name : bundled_plugins())
    bundled += (bundled.empty() ? "" : ", ") + name;
  app.add_option("--plugin", o.plugins,
                 "Load a plugin: a bundled plugin's name or a path to a .so (repeatable). It takes the place in "
                 "the chain its stage says; one that does not say goes after the plugins loaded before it");
  app.add_flag("--no-default-plugins", o.no_default_plugins,
               "Do not load the bundled plugins (" + bundled + "); list the ones you want with --plugin");
  app.add_option("--plugin-dir", o.plugin_dirs, "Load every *.so in DIR, in name order (repeatable)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--plugin-opt", o.plugin_opt_specs,
                 "Set a plugin option, as PLUGIN.KEY=VALUE (repeatable; --list-plugins shows every plugin's options)")
      ->type_name("PLUGIN.KEY=VALUE")
      ->check(CLI::Validator(check_plugin_opt, "PLUGIN.KEY=VALUE", "plugin-opt"));
  app.add_option(
         "--plugin-stage", o.plugin_stage_specs,
         "Move a plugin to another stage of the chain: transport, admission (before the call is routed), routing "
         "or observer (repeatable)")
      ->type_name("PLUGIN=STAGE")
      ->check(CLI::Validator(check_plugin_stage, "PLUGIN=STAGE", "plugin-stage"));
  app.add_flag("--list-plugins", o.list_plugins,
               "Print the plugin chain in order, with versions, stages and options, then exit");
}

void CliParser::add_worker_options() {
  app.add_option("--workers", o.workers,
                 "Run N worker processes that share the port(s), to use N cores (auto: one per CPU; 1 to 256). "
                 "A supervisor starts them, restarts one that dies and passes signals on. More than 1 needs "
                 "--cluster: clients on different workers pair through it. Default: one process")
      ->type_name("N|auto")
      ->check(CLI::Validator(check_workers_value, "", "workers"));
  app.add_option("--node-id", o.node_id,
                 "This node's name in a cluster, for logs and for plugins (default: host name and port; "
                 "worker K of --workers adds -wK)")
      ->type_name("NAME");
  // Set by the supervisor on each worker's command line; not for users.
  app.add_option("--worker-index", o.worker_index)->group("")->check(CLI::Range(1u, kMaxWorkers));
  app.add_option("--worker-count", o.worker_count)->group("")->check(CLI::Range(1u, kMaxWorkers));
}

// Each flag a bundled plugin's option declares, unless duetd or an earlier
// plugin already has an option of that name.
void CliParser::add_plugin_flags() {
  for (const PluginFlag &f : plugins.flags) {
    const std::string name = "--" + f.flag;
    if (f.flag.empty() || app.get_option_no_throw(name) != nullptr)
      continue;
    o.shorthands_.push_back({&f, {}, {}});
    CliOptions::ShorthandValues &v = o.shorthands_.back();
    const std::string help = f.help + " (same as --plugin-opt " + f.plugin + "." + f.key + "=" +
                             (f.value_name.empty() ? "VALUE" : f.value_name) + ")";
    CLI::Option *opt = f.flags & DUET_OPTION_REPEATABLE ? app.add_option(name, v.many, help + "; repeatable")
                                                        : app.add_option(name, v.one, help);
    opt->type_name(f.value_name.empty() ? "VALUE" : f.value_name);
    if (f.flags & DUET_OPTION_FILE)  // with no description: the help says FILE once
      opt->check(CLI::Validator(CLI::ExistingFile).description(""));
  }
  if (plugins.commands.empty())
    return;
  std::string footer = "Commands (from the bundled plugins):";
  for (const PluginCommand &c : plugins.commands)
    footer += "\n  duetd " + c.name + " ...  " + c.help;
  app.footer(footer + "\nRun 'duetd COMMAND --help' for a command's options.");
}

static void write_to_stream(void *stream, const char *text, std::size_t len) {
  static_cast<std::ostream *>(stream)->write(text, static_cast<std::streamsize>(len));
}

// "duetd NAME ...": a plugin's command runs instead of the server.
std::optional<int> CliParser::run_command(int argc, const char *const *argv) {
  if (argc < 2)
    return std::nullopt;
  for (const PluginCommand &c : plugins.commands)
    if (c.name == argv[1]) {
      std::vector<const char *> args(argv + 1, argv + argc);
      args.push_back(nullptr);
      return c.run(argc - 1, args.data(), write_to_stream, &out, &err);
    }
  return std::nullopt;
}

bool CliParser::check_mounts() {
  for (const auto &spec : o.mount_specs) {
    auto eq = spec.find('=');
    std::string url = spec.substr(0, eq);
    while (url.size() > 1 && url.back() == '/')
      url.pop_back();
    std::string dir = spec.substr(eq + 1);
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      err << "--mount " << spec << ": " << dir << " is not a folder\n";
      return false;
    }
    o.mount_urls_.push_back(url);
    o.mount_dirs_.push_back(dir);
  }
  for (std::size_t i = 0; i < o.mount_urls_.size(); i++)
    for (std::size_t j = 0; j < i; j++)
      if (o.mount_urls_[i] == o.mount_urls_[j]) {
        err << "--mount: " << o.mount_urls_[i] << " is given twice\n";
        return false;
      }
  return true;
}

bool CliParser::check_admin_listen() {
  if (o.admin_listen.empty())
    return true;
  auto colon = o.admin_listen.rfind(':');
  std::string host = colon == std::string::npos ? "" : o.admin_listen.substr(0, colon);
  std::string port = colon == std::string::npos ? "" : o.admin_listen.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  char *end = nullptr;
  long n = port.empty() ? -1 : std::strtol(port.c_str(), &end, 10);
  if (host.empty() || n < 0 || n > 65535 || *end != '\0') {
    err << "--admin-listen " << o.admin_listen << ": expected ADDRESS:PORT, e.g. 127.0.0.1:9090 or [::1]:9090\n";
    return false;
  }
  o.admin_host_ = host;
  o.c.admin_port = static_cast<int>(n);
  return true;
}

bool CliParser::check_combinations() {
  for (const auto &origin : o.allow_origins)
    if (origin.rfind("http://", 0) != 0 && origin.rfind("https://", 0) != 0) {
      err << "--allow-origin " << origin << ": an origin is scheme://host[:port], e.g. https://app.example.org\n";
      return false;
    }
  if (!o.acme_webroot.empty() && !o.http_redirect_port) {
    err << "--acme-webroot needs --http-redirect-port (ACME challenges are fetched over plain HTTP)\n";
    return false;
  }
  if (o.no_tls && (o.http_redirect_port || o.hsts)) {
    err << "--http-redirect-port and --hsts need TLS: drop --no-tls\n";
    return false;
  }
  if (o.max_queued_bytes_total < o.max_queued_bytes) {
    err << "--max-queued-bytes-total (" << o.max_queued_bytes_total << ") must be at least --max-queued-bytes ("
        << o.max_queued_bytes << "): one slow client may hold that much\n";
    return false;
  }
  if (!o.no_default_plugins)
    o.load_list_ = bundled_plugins();
  o.load_list_.insert(o.load_list_.end(), o.plugins.begin(), o.plugins.end());
  if (o.load_list_.empty() && o.plugin_dirs.empty()) {
    err << "--no-default-plugins: no plugin is left to load; add --plugin NAME or --plugin-dir DIR\n";
    return false;
  }
  return true;
}

// In a worker, --workers (from a --config file) does not apply and the
// admin port is the worker's own: the given one plus K - 1. Whether the
// plugins can work across workers is theirs to say, from their init.
bool CliParser::check_workers() {
  if (o.worker_index) {
    if (o.c.admin_port)
      o.c.admin_port += static_cast<int>(o.worker_index) - 1;
    return true;
  }
  if (o.workers.empty())
    return true;
  const unsigned n = workers_wanted(o.workers);
  const std::string refusal = workers_refusal(n, o.c.admin_port, o.admin_listen);
  if (!refusal.empty()) {
    err << refusal << "\n";
    return false;
  }
  o.worker_count_ = n;
  return true;
}

// Shorthand flags become --plugin-opt specs; an explicit --plugin-opt wins
// because it comes later.
void CliParser::collect_plugin_opts() {
  std::vector<std::string> shorthands;
  for (const auto &v : o.shorthands_) {
    std::string value = v.one;
    for (const auto &item : v.many)
      value += (value.empty() ? "" : ",") + item;
    if (!v.one.empty() || !v.many.empty())
      shorthands.push_back(v.flag->plugin + "." + v.flag->key + "=" + value);
  }
  o.plugin_opt_specs.insert(o.plugin_opt_specs.begin(), shorthands.begin(), shorthands.end());
  for (const auto &spec : o.plugin_opt_specs) {
    auto dot = spec.find('.');
    auto eq = spec.find('=');
    o.opt_plugins_.push_back(spec.substr(0, dot));
    o.opt_keys_.push_back(spec.substr(dot + 1, eq - dot - 1));
    o.opt_values_.push_back(spec.substr(eq + 1));
  }
  o.shorthands_.clear();  // they point into the declarations, which may go now
}

// Pointers are taken only now that every vector has its final size.
void CliParser::fill_c_options() {
  for (std::size_t i = 0; i < o.mount_urls_.size(); i++)
    o.mounts_.push_back({o.mount_urls_[i].c_str(), o.mount_dirs_[i].c_str()});
  for (std::size_t i = 0; i < o.opt_plugins_.size(); i++)
    o.plugin_opts_.push_back({o.opt_plugins_[i].c_str(), o.opt_keys_[i].c_str(), o.opt_values_[i].c_str()});
  for (const auto &spec : o.plugin_stage_specs) {
    const auto eq = spec.find('=');
    o.stage_names_.push_back(spec.substr(0, eq));
    o.plugin_stages_.push_back({nullptr, stage_named(spec.substr(eq + 1))});
  }
  for (std::size_t i = 0; i < o.plugin_stages_.size(); i++)
    o.plugin_stages_[i].plugin = o.stage_names_[i].c_str();
  for (const auto &p : o.load_list_)
    o.load_ptrs_.push_back(p.c_str());
  for (const auto &d : o.plugin_dirs)
    o.dir_ptrs_.push_back(d.c_str());
  for (const auto &origin : o.allow_origins)
    o.origin_ptrs_.push_back(origin.c_str());
  if (o.web_root.empty())
    o.web_root = duet__paths_default_web_root();
  duet_options_t &c = o.c;
  auto c_str = [](const std::string &s) { return s.empty() ? nullptr : s.c_str(); };
  c.address = c_str(o.address);
  c.port = o.port;
  c.tls = !o.no_tls;
  c.cert = c_str(o.cert);
  c.key = c_str(o.key);
  c.state_dir = c_str(o.state_dir);
  c.web_root = o.web_root.c_str();
  c.mounts = o.mounts_.data();
  c.mount_count = o.mounts_.size();
  c.max_message_bytes = o.max_message_bytes;
  c.max_queued_bytes = o.max_queued_bytes;
  c.max_queued_bytes_total = o.max_queued_bytes_total;
  c.max_connections = o.max_connections;
  c.max_connections_per_ip = o.max_connections_per_ip;
  c.max_messages_per_second = o.max_messages_per_second;
  c.open_timeout_s = o.open_timeout;
  c.http_timeout_s = o.http_timeout;
  c.max_header_bytes = o.max_header_bytes;
  c.health = !o.no_health;
  c.metrics = !o.no_metrics;
  c.admin_address = c_str(o.admin_host_);
  c.tls_min_13 = o.tls_min == "1.3";
  c.hsts_s = o.hsts;
  c.redirect_port = o.http_redirect_port;
  c.acme_webroot = c_str(o.acme_webroot);
  c.allow_origins = o.origin_ptrs_.data();
  c.allow_origin_count = o.origin_ptrs_.size();
  c.allow_any_origin = o.allow_any_origin;
  c.plugins = o.load_ptrs_.data();
  c.plugin_count = o.load_ptrs_.size();
  c.plugin_dirs = o.dir_ptrs_.data();
  c.plugin_dir_count = o.dir_ptrs_.size();
  c.plugin_opts = o.plugin_opts_.data();
  c.plugin_opt_count = o.plugin_opts_.size();
  c.plugin_stages = o.plugin_stages_.data();
  c.plugin_stage_count = o.plugin_stages_.size();
  c.node_id = c_str(o.node_id);
  c.list_plugins = o.list_plugins;
  c.workers = o.worker_count_;
  c.worker_index = o.worker_index;
  c.worker_count = o.worker_count;
  c.log_level = o.log_level == "error"   ? DUET_LOG_ERROR
                : o.log_level == "warn"  ? DUET_LOG_WARN
                : o.log_level == "debug" ? DUET_LOG_DEBUG
                                         : DUET_LOG_INFO;
}

CliOutcome CliParser::parse(int argc, const char *const *argv) {
  if (std::optional<int> code = run_command(argc, argv))
    return {false, *code};
  add_general_options();
  add_tls_options();
  add_limit_options();
  add_worker_options();
  add_plugin_options();
  add_plugin_flags();
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success &e) {  // --help and --version
    app.exit(e, out, err);
    return {false, DUET_EXIT_OK};
  } catch (const CLI::ParseError &e) {
    app.exit(e, out, err);
    err << "Run 'duetd --help' for the options.\n";
    return {false, DUET_EXIT_USAGE};
  }
  for (bool (CliParser::*check)() :
       {&CliParser::check_mounts, &CliParser::check_admin_listen, &CliParser::check_combinations})
    if (!(this->*check)())
      return {false, DUET_EXIT_USAGE};
  collect_plugin_opts();
  if (!check_workers())
    return {false, DUET_EXIT_USAGE};
  fill_c_options();
  return {true, DUET_EXIT_OK};
}

CliOutcome parse_command_line(int argc, const char *const *argv, CliOptions &o, const PluginDeclarations &plugins,
                              std::ostream &out, std::ostream &err) {
  CliParser parser(o, plugins, out, err);
  return parser.parse(argc, argv);
}

CliOutcome parse_command_line(int argc, const char *const *argv, CliOptions &o, std::ostream &out, std::ostream &err) {
  static const PluginDeclarations none;
  return parse_command_line(argc, argv, o, none, out, err);
}

}  // namespace duet
