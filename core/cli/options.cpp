#include "cli/options.hpp"

#include <chrono>
#include <climits>
#include <cstdlib>
#include <sstream>

#include <sys/stat.h>

#include <CLI/CLI.hpp>

#include "auth_token.hpp"
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

// "plugin.key=value"
std::string check_plugin_opt(const std::string &spec) {
  if (has_control_chars(spec))
    return "control characters (NUL included) are not allowed";
  auto dot = spec.find('.');
  auto eq = spec.find('=');
  if (dot == std::string::npos || eq == std::string::npos || dot == 0 || dot + 1 >= eq)
    return "expected PLUGIN.KEY=VALUE, e.g. --plugin-opt pairing.takeover=refuse";
  return {};
}

}  // namespace

int parse_command_line(int argc, const char *const *argv, CliOptions &o, std::ostream &out, std::ostream &err) {
  char state_buf[PATH_MAX];
  const std::string default_state = duet__paths_default_state_dir(state_buf, sizeof state_buf);
  const std::string default_web = duet__paths_default_web_root();
  std::string bundled;
  for (const auto &name : bundled_plugins())
    bundled += (bundled.empty() ? "" : ", ") + name;

  CLI::App app{"duetd: a small, fast signaling server and web client for 1:1 WebRTC video calls.\n"
               "With no options it serves the web client and WebSocket signaling on https://localhost:8443/\n"
               "with a self-signed development certificate made on first run.",
               "duetd"};
  app.set_version_flag("--version", "duetd " DUET_VERSION " (plugin ABI " + std::to_string(DUET_ABI_MAJOR) + "." +
                                        std::to_string(DUET_ABI_MINOR) + ")");
  app.set_config("--config", "", "Read options from FILE (TOML/INI: one 'name = value' per line, names as the long options)");
  app.allow_config_extras(CLI::config_extras_mode::error);  // a typo in a config file is an error, not a no-op
  app.get_formatter()->column_width(34);

  app.add_option("--address", o.address, "Address to listen on (default: every address, IPv4 and IPv6)");
  app.add_option("--port", o.port, "TCP port to listen on; 0 picks a free one (it is logged)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  auto *cert = app.add_option("--cert", o.cert, "TLS certificate chain (PEM); needs --key")->check(CLI::ExistingFile);
  auto *key = app.add_option("--key", o.key, "TLS private key (PEM); needs --cert; must not lie in a served folder")
                  ->check(CLI::ExistingFile);
  cert->needs(key);
  key->needs(cert);
  app.add_option("--state-dir", o.state_dir,
                 "Folder for the development certificate and other state (default: " + default_state + ")");
  auto *no_tls = app.add_flag("--no-tls", o.no_tls,
                              "Plain HTTP and WebSocket, for running behind a TLS reverse proxy only");
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
  app.add_option("--web-root", o.web_root, "Folder served at / (default: " + default_web + ")")
      ->check(CLI::ExistingDirectory);
  app.add_option("--mount", o.mount_specs, "Also serve DIR at /URL, as /URL=DIR (repeatable)")
      ->type_name("/URL=DIR")
      ->check(CLI::Validator(check_mount, "/URL=DIR", "mount"));
  app.add_option("--max-message-bytes", o.max_message_bytes,
                 "Largest signaling message accepted; larger ones get a too-large error")
      ->check(CLI::Range(static_cast<std::size_t>(256), static_cast<std::size_t>(16 * 1024 * 1024)))
      ->capture_default_str();
  app.add_option("--max-queued-bytes", o.max_queued_bytes,
                 "Bytes that may wait for one slow client before it is disconnected")
      ->check(CLI::Range(static_cast<std::size_t>(4096), static_cast<std::size_t>(1024 * 1024 * 1024)))
      ->capture_default_str();
  app.add_option("--max-queued-bytes-total", o.max_queued_bytes_total,
                 "Bytes that may wait for all slow clients together; past it the clients holding the most are "
                 "disconnected (bounds memory on a small board)")
      ->check(CLI::Range(static_cast<std::size_t>(4096), static_cast<std::size_t>(1024) * 1024 * 1024 * 64))
      ->capture_default_str();
  app.add_option("--max-connections", o.max_connections,
                 "WebSocket connections in all; more get a server-full error and are closed")
      ->check(CLI::Range(static_cast<std::size_t>(1), static_cast<std::size_t>(10000000)))
      ->capture_default_str();
  app.add_option("--max-connections-per-ip", o.max_connections_per_ip,
                 "WebSocket connections from one address; more get a too-many-connections error")
      ->check(CLI::Range(static_cast<std::size_t>(1), static_cast<std::size_t>(10000000)))
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
  app.add_flag("--no-health", o.no_health, "Do not serve GET /healthz");
  app.add_flag("--no-metrics", o.no_metrics, "Do not serve GET /metrics (Prometheus text format)");
  app.add_option("--admin-listen", o.admin_listen,
                 "Serve /healthz and /metrics on this plain-HTTP ADDRESS:PORT only, not on the main port")
      ->type_name("ADDR:PORT");
  app.add_option("--audit-log", o.audit_log,
                 "Write the audit log (JSON Lines) to FILE, or - for stdout; SIGHUP reopens it "
                 "(same as --plugin-opt audit-log.path=FILE)")
      ->type_name("FILE");
  app.add_option("--auth-secret", o.auth_secret,
                 "FILE holding a secret: every open must then carry a call token made with "
                 "'duetd token --auth-secret FILE --id ID'")
      ->check(CLI::ExistingFile)
      ->type_name("FILE");
  app.add_option("--stun", o.stun, "A STUN server URL for the clients, e.g. stun:stun.example.org (repeatable)");
  app.add_option("--turn", o.turn, "A TURN server URL for the clients, e.g. turn:turn.example.org:3478 (repeatable)");
  app.add_option("--turn-secret", o.turn_secret,
                 "FILE holding the TURN REST-API secret (coturn's static-auth-secret): each client gets its own "
                 "short-lived credentials")
      ->check(CLI::ExistingFile)
      ->type_name("FILE");
  app.add_option("--turn-ttl", o.turn_ttl, "Seconds a TURN credential stays valid (default 86400)")
      ->check(CLI::Range(60L, 604800L));
  app.add_option("--plugin", o.plugins,
                 "Load a plugin: a bundled plugin's name or a path to a .so, after the bundled ones (repeatable)");
  app.add_flag("--no-default-plugins", o.no_default_plugins,
               "Do not load the bundled plugins (" + bundled + "); list the ones you want with --plugin");
  app.add_option("--plugin-dir", o.plugin_dirs, "Load every *.so in DIR, in name order (repeatable)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--plugin-opt", o.plugin_opt_specs,
                 "Set a plugin option, e.g. pairing.takeover=refuse (repeatable; --list-plugins shows them)")
      ->type_name("PLUGIN.KEY=VALUE")
      ->check(CLI::Validator(check_plugin_opt, "PLUGIN.KEY=VALUE", "plugin-opt"));
  app.add_flag("--list-plugins", o.list_plugins, "Print the loaded plugins, their versions and options, then exit");
  app.add_option("--log-level", o.log_level, "How much to log")
      ->check(CLI::IsMember({"error", "warn", "info", "debug"}))
      ->capture_default_str();

  // duetd token: mint a call token for scripts and backends, then exit.
  std::string token_id, token_peer, token_ttl = "1h", token_secret;
  auto *token_cmd = app.add_subcommand("token", "Print a call token for --auth-secret servers, then exit");
  token_cmd->add_option("--auth-secret", token_secret, "FILE holding the server's secret")
      ->required()
      ->check(CLI::ExistingFile);
  token_cmd->add_option("--id", token_id, "The local id the token lets its holder open as")->required();
  token_cmd->add_option("--peer", token_peer, "Bind the token to this peer id too");
  token_cmd->add_option("--ttl", token_ttl, "How long the token is valid: 3600, 90s, 30m, 1h, 7d")
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success &e) {  // --help and --version
    return app.exit(e, out, err);
  } catch (const CLI::ParseError &e) {
    app.exit(e, out, err);
    err << "Run 'duetd --help' for the options.\n";
    return 2;
  }

  if (*token_cmd) {
    std::int64_t ttl = duet::auth::parse_duration(token_ttl);
    if (ttl <= 0 || ttl > 366LL * 86400) {
      err << "token --ttl " << token_ttl << ": expected a duration up to a year, e.g. 3600, 30m, 1h or 7d\n";
      return 2;
    }
    for (const std::string *id : {&token_id, &token_peer})
      for (unsigned char ch : *id)
        if (ch < 0x20 || ch == 0x7f) {
          err << "token: ids must not contain control characters\n";
          return 2;
        }
    if (token_id.empty() || token_id.size() > 256 || token_peer.size() > 256) {
      err << "token: --id must be 1 to 256 bytes (and --peer at most 256)\n";
      return 2;
    }
    try {
      std::string secret = duet::auth::read_secret_file(token_secret);
      auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
      out << duet::auth::mint(secret, token_id, token_peer, now.count() + ttl) << "\n";
    } catch (const std::exception &e) {
      err << "token: " << e.what() << "\n";
      return 2;
    }
    return 0;
  }

  for (const auto &spec : o.mount_specs) {
    auto eq = spec.find('=');
    std::string url = spec.substr(0, eq);
    while (url.size() > 1 && url.back() == '/')
      url.pop_back();
    std::string dir = spec.substr(eq + 1);
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      err << "--mount " << spec << ": " << dir << " is not a folder\n";
      return 2;
    }
    o.mount_urls_.push_back(url);
    o.mount_dirs_.push_back(dir);
  }
  for (std::size_t i = 0; i < o.mount_urls_.size(); i++)
    for (std::size_t j = 0; j < i; j++)
      if (o.mount_urls_[i] == o.mount_urls_[j]) {
        err << "--mount: " << o.mount_urls_[i] << " is given twice\n";
        return 2;
      }
  // Shorthands for bundled plugins' options; an explicit --plugin-opt given later wins.
  std::vector<std::string> shorthands;
  if (!o.audit_log.empty())
    shorthands.push_back("audit-log.path=" + o.audit_log);
  if (!o.auth_secret.empty())
    shorthands.push_back("auth.secret-file=" + o.auth_secret);
  auto join = [](const std::vector<std::string> &v) {
    std::string s;
    for (const auto &x : v)
      s += (s.empty() ? "" : ",") + x;
    return s;
  };
  if (!o.stun.empty())
    shorthands.push_back("ice-servers.stun=" + join(o.stun));
  if (!o.turn.empty())
    shorthands.push_back("ice-servers.turn=" + join(o.turn));
  if (!o.turn_secret.empty())
    shorthands.push_back("ice-servers.turn-secret-file=" + o.turn_secret);
  if (o.turn_ttl)
    shorthands.push_back("ice-servers.turn-ttl=" + std::to_string(o.turn_ttl));
  o.plugin_opt_specs.insert(o.plugin_opt_specs.begin(), shorthands.begin(), shorthands.end());
  if (!o.admin_listen.empty()) {
    auto colon = o.admin_listen.rfind(':');
    std::string host = colon == std::string::npos ? "" : o.admin_listen.substr(0, colon);
    std::string port = colon == std::string::npos ? "" : o.admin_listen.substr(colon + 1);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
      host = host.substr(1, host.size() - 2);
    char *end = nullptr;
    long n = port.empty() ? -1 : std::strtol(port.c_str(), &end, 10);
    if (host.empty() || n < 0 || n > 65535 || *end != '\0') {
      err << "--admin-listen " << o.admin_listen << ": expected ADDRESS:PORT, e.g. 127.0.0.1:9090 or [::1]:9090\n";
      return 2;
    }
    o.admin_host_ = host;
    o.c.admin_port = static_cast<int>(n);
  }
  for (const auto &spec : o.plugin_opt_specs) {
    auto dot = spec.find('.');
    auto eq = spec.find('=');
    o.opt_plugins_.push_back(spec.substr(0, dot));
    o.opt_keys_.push_back(spec.substr(dot + 1, eq - dot - 1));
    o.opt_values_.push_back(spec.substr(eq + 1));
  }
  if (!o.no_default_plugins)
    o.load_list_ = bundled_plugins();
  o.load_list_.insert(o.load_list_.end(), o.plugins.begin(), o.plugins.end());
  if (o.load_list_.empty() && o.plugin_dirs.empty()) {
    err << "--no-default-plugins: no plugin is left to load; add --plugin NAME or --plugin-dir DIR\n";
    return 2;
  }

  // Pointers are taken only now that every vector has its final size.
  for (std::size_t i = 0; i < o.mount_urls_.size(); i++)
    o.mounts_.push_back({o.mount_urls_[i].c_str(), o.mount_dirs_[i].c_str()});
  for (std::size_t i = 0; i < o.opt_plugins_.size(); i++)
    o.plugin_opts_.push_back({o.opt_plugins_[i].c_str(), o.opt_keys_[i].c_str(), o.opt_values_[i].c_str()});
  for (const auto &p : o.load_list_)
    o.load_ptrs_.push_back(p.c_str());
  for (const auto &d : o.plugin_dirs)
    o.dir_ptrs_.push_back(d.c_str());
  for (const auto &origin : o.allow_origins) {
    if (origin.rfind("http://", 0) != 0 && origin.rfind("https://", 0) != 0) {
      err << "--allow-origin " << origin << ": an origin is scheme://host[:port], e.g. https://app.example.org\n";
      return 2;
    }
    o.origin_ptrs_.push_back(origin.c_str());
  }
  if (!o.acme_webroot.empty() && !o.http_redirect_port) {
    err << "--acme-webroot needs --http-redirect-port (ACME challenges are fetched over plain HTTP)\n";
    return 2;
  }
  if (o.no_tls && (o.http_redirect_port || o.hsts)) {
    err << "--http-redirect-port and --hsts need TLS: drop --no-tls\n";
    return 2;
  }
  if (o.max_queued_bytes_total < o.max_queued_bytes) {
    err << "--max-queued-bytes-total (" << o.max_queued_bytes_total << ") must be at least --max-queued-bytes ("
        << o.max_queued_bytes << "): one slow client may hold that much\n";
    return 2;
  }
  if (o.web_root.empty())
    o.web_root = default_web;

  duet_options_t &c = o.c;
  c.address = o.address.empty() ? nullptr : o.address.c_str();
  c.port = o.port;
  c.tls = !o.no_tls;
  c.cert = o.cert.empty() ? nullptr : o.cert.c_str();
  c.key = o.key.empty() ? nullptr : o.key.c_str();
  c.state_dir = o.state_dir.empty() ? nullptr : o.state_dir.c_str();
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
  c.admin_address = o.admin_host_.empty() ? nullptr : o.admin_host_.c_str();
  c.tls_min_13 = o.tls_min == "1.3";
  c.hsts_s = o.hsts;
  c.redirect_port = o.http_redirect_port;
  c.acme_webroot = o.acme_webroot.empty() ? nullptr : o.acme_webroot.c_str();
  c.allow_origins = o.origin_ptrs_.data();
  c.allow_origin_count = o.origin_ptrs_.size();
  c.allow_any_origin = o.allow_any_origin;
  c.plugins = o.load_ptrs_.data();
  c.plugin_count = o.load_ptrs_.size();
  c.plugin_dirs = o.dir_ptrs_.data();
  c.plugin_dir_count = o.dir_ptrs_.size();
  c.plugin_opts = o.plugin_opts_.data();
  c.plugin_opt_count = o.plugin_opts_.size();
  c.list_plugins = o.list_plugins;
  c.log_level = o.log_level == "error"  ? DUET_LOG_ERROR
                : o.log_level == "warn" ? DUET_LOG_WARN
                : o.log_level == "debug" ? DUET_LOG_DEBUG
                                         : DUET_LOG_INFO;
  return -1;
}

}  // namespace duet
