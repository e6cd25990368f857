#include "cli/cli_parser.hpp"

#include <climits>
#include <limits>
#include <sstream>

#include "cli/worker_count.hpp"
#include "duet_build_config.h"
#include <CLI/CLI.hpp>

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
  app.add_option("--admin-token-file", o.admin_token_file,
                 "Turn on the admin API (/admin/connections, .../ID/close, /admin/drain) on --admin-listen, for "
                 "requests with Authorization: Bearer and this file's contents (at least 16 bytes)")
      ->type_name("FILE");
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
  app.add_option("--drain-timeout", o.drain_timeout,
                 "Seconds a drain (SIGUSR1: /healthz says draining, new clients are sent away) waits for the "
                 "connections to go before closing the rest and exiting")
      ->check(CLI::Range(0.0, 86400.0))
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

// Each flag a bundled plugin's option declares, unless duetd already has an
// option of that name. A flag two plugins declare alike (--cluster: one
// Redis for all of them) sets both.
void CliParser::add_plugin_flags() {
  for (const PluginFlag &f : plugins.flags) {
    const std::string name = "--" + f.flag;
    if (f.flag.empty())
      continue;
    if (CLI::Option *existing = app.get_option_no_throw(name)) {
      for (CliOptions::ShorthandValues &v : o.shorthands_)
        if (v.flags.front()->flag == f.flag && v.flags.front()->flags == f.flags) {
          v.flags.push_back(&f);
          std::string help = existing->get_description();
          help.insert(help.rfind(')'),
                      " and " + f.plugin + "." + f.key + "=" + (f.value_name.empty() ? "VALUE" : f.value_name));
          existing->description(help);
        }
      continue;
    }
    o.shorthands_.push_back({{&f}, {}, {}});
    CliOptions::ShorthandValues &v = o.shorthands_.back();
    const std::string help = f.help + " (same as --plugin-opt " + f.plugin + "." + f.key + "=" +
                             (f.value_name.empty() ? "VALUE" : f.value_name) + ")";
    CLI::Option *opt = f.flags & DUET_OPTION_REPEATABLE ? app.add_option(name, v.many, help + "; repeatable")
                                                        : app.add_option(name, v.one, help);
    opt->type_name(f.value_name.empty() ? "VALUE" : f.value_name);
    if (f.flags & DUET_OPTION_FILE)  // with no description: the help says FILE once
      opt->check(CLI::Validator(CLI::ExistingFile).description(""));
  }
  std::string footer = "Commands:\n  duetd admin ...  ask a running duetd over its admin API: list, close, drain";
  for (const PluginCommand &c : plugins.commands)
    footer += "\n  duetd " + c.name + " ...  " + c.help;
  app.footer(footer + "\nRun 'duetd COMMAND --help' for a command's options.");
}

}  // namespace duet
