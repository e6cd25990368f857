#include <cstdlib>
#include <optional>
#include <string_view>

#include <sys/stat.h>

#include "cli/admin_command.hpp"
#include "cli/cli_parser.hpp"
#include "cli/worker_count.hpp"
#include "duet/util.hpp"

namespace duet {

static void write_to_stream(void *stream, const char *text, std::size_t len) {
  static_cast<std::ostream *>(stream)->write(text, static_cast<std::streamsize>(len));
}

// "duetd NAME ...": the core's admin command or a plugin's command runs
// instead of the server.
std::optional<int> CliParser::run_command(int argc, const char *const *argv) {
  if (argc < 2)
    return std::nullopt;
  if (std::string_view(argv[1]) == "admin")
    return admin_command(argc - 1, argv + 1, write_to_stream, &out, &err);
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

bool CliParser::check_admin_token() {
  if (o.admin_token_file.empty())
    return true;
  if (o.admin_listen.empty()) {
    err << "--admin-token-file needs --admin-listen ADDRESS:PORT: the admin API is never served on the public port\n";
    return false;
  }
  try {
    o.admin_token_ = duet::read_trimmed_file(o.admin_token_file);
  } catch (const duet::EnvironmentError &e) {
    err << "--admin-token-file: " << e.what() << "\n";
    return false;
  }
  // Sent as "Authorization: Bearer TOKEN": printable ASCII, no spaces, and
  // short enough for the header buffer (admin_api.c compares it whole).
  bool printable = true;
  for (unsigned char c : o.admin_token_)
    printable = printable && c > 0x20 && c < 0x7f;
  if (o.admin_token_.size() < 16 || o.admin_token_.size() > 400 || !printable) {
    err << "--admin-token-file " << o.admin_token_file
        << ": the token must be 16 to 400 printable ASCII characters without spaces (make one with: "
           "openssl rand -hex 32 > FILE)\n";
    return false;
  }
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
      for (const PluginFlag *f : v.flags)
        shorthands.push_back(f->plugin + "." + f->key + "=" + value);
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
  c.drain_timeout_s = o.drain_timeout;
  c.http_timeout_s = o.http_timeout;
  c.max_header_bytes = o.max_header_bytes;
  c.health = !o.no_health;
  c.metrics = !o.no_metrics;
  c.admin_address = c_str(o.admin_host_);
  c.admin_token = c_str(o.admin_token_);
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
  for (bool (CliParser::*check)() : {&CliParser::check_mounts, &CliParser::check_admin_listen,
                                     &CliParser::check_admin_token, &CliParser::check_combinations})
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
