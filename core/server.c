/* The server's life: one libuv loop carrying libwebsockets (TLS, HTTP,
 * WebSocket) as a foreign loop, started in stages, stopped by a signal,
 * torn down in the order lws needs (signals, drain and shutdown are in
 * server_lifecycle.c). What happens to each connection lives
 * in session.c (signaling) and http_static.c (HTTP); its own series on
 * /metrics in process_metrics.c. */
#include "duet_build_config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "fd_limit.h"
#include "log.h"
#include "node_identity.h"
#include "server.h"

static duet_server_t *server_of(struct lws *wsi) { return lws_context_user(lws_get_context(wsi)); }

/* ---- what /healthz shows ---- */

static void health(void *data, duet_health_t *h) {
  const duet_server_t *server = data;
  h->connections = server->sessions.conns.live;
  h->uptime_s = (double)(uv_now(&server->loop) - server->process.started_ms) / 1000.0;
  h->stopping = server->shutting_down;
  h->draining = server->draining;
  h->degraded = duet__plugins_degraded(server->plugins, h->degraded_reasons, sizeof h->degraded_reasons);
}

/* ---- lws callbacks: each protocol's work is done by its own unit ---- */

static int callback_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  duet_server_t *server = server_of(wsi);
  if (reason == LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS) {
    duet__tls_adopt_ssl_ctx(&server->tls, user); /* user is the vhost's SSL_CTX here */
    return 0;
  }
  return duet__http_static_callback(&server->http, wsi, (int)reason, user, in, len);
}

static int callback_signaling(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  return duet__sessions_callback(&server_of(wsi)->sessions, wsi, (int)reason, user, in, len);
}

static void lws_log_to_ours(int level, const char *line) {
  /* lws logs some failures per connection (TLS errors among them): a few
   * lines in full per interval, the rest counted. */
  static duet_log_limit_t errors = {.kind = "libwebsockets errors", .burst = 5};
  static duet_log_limit_t others = {.kind = "libwebsockets", .burst = 5};
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    n--;
  duet__log_limited(level == LLL_ERR ? &errors : &others,
                    level == LLL_ERR    ? DUET_LOG_ERROR
                    : level == LLL_WARN ? DUET_LOG_WARN
                                        : DUET_LOG_DEBUG,
                    "libwebsockets: %.*s", (int)n, line);
}

static uint64_t loop_now(void *data) { return uv_now(&((duet_server_t *)data)->loop); }

/* ---- start-up, in stages ---- */

/* Headers on every HTTP response. lws's own "best practices" set has no
 * manifest-src, which blocks the web app manifest. */
static const struct lws_protocol_vhost_options *response_headers(duet_server_t *server) {
  struct lws_protocol_vhost_options *h = server->headers;
  h[0] = (struct lws_protocol_vhost_options){
      &h[1], NULL, "content-security-policy:",
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
      "connect-src 'self' ws: wss:; media-src 'self' blob: mediastream:; manifest-src 'self'; "
      "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"};
  h[1] = (struct lws_protocol_vhost_options){&h[2], NULL, "x-content-type-options:", "nosniff"};
  h[2] = (struct lws_protocol_vhost_options){&h[3], NULL, "x-frame-options:", "deny"};
  h[3] = (struct lws_protocol_vhost_options){NULL, NULL, "referrer-policy:", "no-referrer"};
  if (server->opt->tls && server->opt->hsts_s) {
    snprintf(server->hsts_value, sizeof server->hsts_value, "max-age=%u", server->opt->hsts_s);
    h[4] = (struct lws_protocol_vhost_options){NULL, NULL, "strict-transport-security:", server->hsts_value};
    h[3].next = &h[4];
  }
  return h;
}

static void fill_lws_info(duet_server_t *server, struct lws_context_creation_info *info) {
  static const struct lws_protocol_vhost_options pvo_default = {NULL, NULL, "default", "1"};
  static const struct lws_protocol_vhost_options pvo = {NULL, &pvo_default, "duet", ""};
  /* No lws idle timer per connection: a plugin pings. lws 4.1
   * keeps its timers in a sorted list, so with one per connection every new
   * connection walked all the others (0.23 -> 0.35 ms CPU per connection
   * from 2,000 to 10,000 held). */
  static const lws_retry_bo_t no_idle_timer = {.secs_since_valid_ping = 0, .secs_since_valid_hangup = 0};
  const duet_options_t *opt = server->opt;
  server->protocols[0] = (struct lws_protocols){"http", callback_http, duet__http_static_session_size(), 0, 0, NULL, 0};
  /* A 128-byte receive buffer (not 4 KiB) per connection: larger messages
   * arrive in pieces and are reassembled (reassembly.c). Writes go out up to
   * one TLS record (16 KiB) at a time, as conn.c batches them. */
  server->protocols[1] =
      (struct lws_protocols){"duet", callback_signaling, duet__sessions_session_size(), 128, 0, NULL, 16384};
  memset(info, 0, sizeof *info);
  info->options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
  info->pcontext = &server->lws;
  info->user = server;
  info->port = CONTEXT_PORT_NO_LISTEN_SERVER; /* listener.c accepts */
  info->protocols = server->protocols;
  /* A WebSocket with no sub-protocol (the tutorial's client) goes to the
   * protocol whose per-vhost options say "default". */
  info->pvo = &pvo;
  info->vhost_name = "duet";
  /* HTTP/1.1 only: h2 costs memory per connection and some WebSocket
   * clients fail their upgrade when h2 is offered. */
  info->alpn = "http/1.1";
  /* Slow clients (slowloris) get this long for the handshake and headers. */
  info->timeout_secs = opt->http_timeout_s;
  info->timeout_secs_ah_idle = opt->http_timeout_s;
  info->max_http_header_data = (unsigned short)opt->max_header_bytes;
  info->keepalive_timeout = 5;
  info->retry_and_idle_policy = &no_idle_timer;
  info->headers = response_headers(server);
  duet__tls_configure(&server->tls, info);
}

static int start_lws(duet_server_t *server) {
  static void *loops[1];
  loops[0] = &server->loop;
  struct lws_context_creation_info info;
  fill_lws_info(server, &info);
  info.foreign_loops = loops;
  server->lws = lws_create_context(&info);
  if (!server->lws) {
    DUET_ERROR("could not start libwebsockets (see its error above: a bad certificate or key, or a missing "
               "libwebsockets-evlib-uv package?)");
    return DUET_EIO;
  }
  server->vhost = lws_create_vhost(server->lws, &info);
  if (!server->vhost) {
    DUET_ERROR("could not set up TLS or HTTP (see the libwebsockets error above: is the certificate or key bad?)");
    return DUET_EIO;
  }
  return 0;
}

/* Opens one listener; what names its failures in the log. */
static int open_listener(duet_server_t *server, duet_listener_t *l, const char *address, int port, int *bound,
                         const char *what) {
  char err[1024];
  int r = duet__listener_open(l, &server->loop, server->vhost, address, port, bound, err, sizeof err);
  if (r != 0)
    DUET_ERROR("%s%s", what, err);
  return r;
}

static int open_extra_listeners(duet_server_t *server, int public_port) {
  const duet_options_t *opt = server->opt;
  if (opt->redirect_port) {
    int port = 0;
    server->redirect_listener.plain_http = 1;
    server->redirect_listener.tag = &server->redirect_listener;
    int r = open_listener(server, &server->redirect_listener, opt->address, opt->redirect_port, &port,
                          "--http-redirect-port: ");
    if (r != 0)
      return r;
    server->http.redirect_tag = server->redirect_listener.tag;
    server->http.public_port = public_port;
    DUET_INFO("redirecting plain HTTP on port %d to HTTPS%s", port,
              opt->acme_webroot ? " (and serving ACME challenges)" : "");
  }
  if (opt->admin_address) {
    /* Health and metrics on their own plain-HTTP socket; the HTTP callback
     * tells its connections apart by the listener's tag. */
    int port = 0;
    server->admin_listener.plain_http = 1;
    server->admin_listener.tag = &server->admin_listener;
    int r =
        open_listener(server, &server->admin_listener, opt->admin_address, opt->admin_port, &port, "--admin-listen: ");
    if (r != 0)
      return r;
    server->http.admin_tag = server->admin_listener.tag;
    int v6 = strchr(opt->admin_address, ':') != NULL;
    DUET_INFO("health and metrics on http://%s%s%s:%d/", v6 ? "[" : "", opt->admin_address, v6 ? "]" : "", port);
  }
  return 0;
}

static void log_listening(const duet_server_t *server, int port) {
  const duet_options_t *opt = server->opt;
  const char *scheme = opt->tls ? "https" : "http";
  const char *web_root = duet__mounts_web_root(&server->mounts);
  if (opt->address) {
    int v6 = strchr(opt->address, ':') != NULL;
    DUET_INFO("listening on %s://%s%s%s:%d/ (web root %s)", scheme, v6 ? "[" : "", opt->address, v6 ? "]" : "", port,
              web_root);
  } else {
    DUET_INFO("listening on %s://localhost:%d/ on every address, %s (web root %s)", scheme, port,
              DUET_WITH_IPV6 ? "IPv4 and IPv6" : "IPv4 only (built with -Dipv6=false)", web_root);
  }
}

/* Loads the plugins and sets up the sessions. Returns 0 or a DUET_E*
 * code; after --list-plugins there is nothing to run (listed). */
static int start_plugins(duet_server_t *server, int *listed) {
  const duet_options_t *opt = server->opt;
  char err[1024] = "";
  duet_host_env_t env = {
      &server->loop, &server->sessions.conns, &server->metrics, opt, &server->port, duet__server_exit_released, server};
  duet__host_init(&server->host, &env);
  int r = duet__plugins_load(&server->plugins, &duet__host_table, &server->host, opt, err, sizeof err);
  if (r != 0) {
    DUET_ERROR("%s", err);
    return r;
  }
  if (opt->list_plugins) {
    duet__plugins_print(server->plugins);
    *listed = 1;
    return 0;
  }
  r = duet__sessions_init(&server->sessions, &server->loop, opt, server->plugins, &server->metrics,
                          duet__server_drained, server);
  server->process = (duet_process_metrics_t){
      .listeners = {&server->listener, &server->admin_listener, &server->redirect_listener}, .loop = &server->loop};
  if (r == 0)
    r = duet__process_metrics_add(&server->metrics, &server->process);
  if (r != 0)
    DUET_ERROR("cannot set up the metrics: %s", strerror(-r));
  return r;
}

/* Everything up to the first accepted connection. Returns 0 when the
 * server is ready to run (or, with *listed, has nothing to run), else a
 * DUET_E* code. */
static int start(duet_server_t *server, int *listed) {
  const duet_options_t *opt = server->opt;
  int r = start_plugins(server, listed);
  if (r != 0 || *listed)
    return r;
  uv_update_time(&server->loop);
  server->process.started_ms = uv_now(&server->loop);
  /* Before lws starts: it sizes its tables by the limit it finds. */
  server->process.open_files_limit = duet__fd_limit_raise(opt->max_connections);
  r = duet__tls_prepare(&server->tls, opt);
  if (r == 0)
    r = duet__mounts_prepare(&server->mounts, opt, duet__tls_key_path(&server->tls),
                             duet__tls_secret_dir(&server->tls));
  server->admin = (duet_admin_http_t){.opt = opt, .metrics = &server->metrics, .health = health, .health_data = server};
  server->admin_api = (duet_admin_api_t){.token = opt->admin_token,
                                         .token_len = opt->admin_token ? strlen(opt->admin_token) : 0,
                                         .conns = &server->sessions.conns,
                                         .plugins = server->plugins,
                                         .host = &server->host,
                                         .node_id = server->node_id,
                                         .now_ms = loop_now,
                                         .drain = duet__server_admin_drain,
                                         .data = server};
  /* Without a token the API answers that it is off. */
  server->http =
      (duet_http_t){.opt = opt, .mounts = &server->mounts, .admin = &server->admin, .admin_api = &server->admin_api};
  if (r == 0 && opt->admin_token)
    r = duet__admin_api_add_metrics(&server->admin_api, &server->metrics);
  if (r == 0)
    r = start_lws(server);
  /* Workers share the public ports; a lone duetd must not share them by
   * mistake. The admin port is each worker's own (the CLI adds the index). */
  server->listener.reuseport = server->redirect_listener.reuseport = opt->worker_index > 0;
  int port = 0;
  if (r == 0)
    r = open_listener(server, &server->listener, opt->address, opt->port, &port, "");
  if (r == 0)
    r = open_extra_listeners(server, port);
  if (r != 0)
    return r;
  server->port = port;
  duet__node_id(opt, port, server->node_id, sizeof server->node_id);
  duet__server_start_handles(server);
  /* Logged last: whoever waits for this line may signal us at once. */
  log_listening(server, port);
  if (duet__early_drain_noted())
    duet__server_begin_drain(server, "SIGUSR1 (while starting)");
  return 0;
}

/* Teardown for a foreign loop: destroy lws (it closes its handles and the
 * connections), close our handles, run the loop dry, destroy again if lws
 * is not done, then close the loop. Safe after a start that failed at any
 * stage. */
static void tear_down(duet_server_t *server) {
  duet__sessions_tear_down(&server->sessions);
  if (server->lws)
    lws_context_destroy(server->lws);
  duet__plugins_shutdown(server->plugins);
  duet__host_release(&server->host);
  duet__plugins_unload(server->plugins);
  server->plugins = NULL;
  server->sessions.plugins = NULL;
  duet__listener_close(&server->listener);
  duet__listener_close(&server->admin_listener);
  duet__listener_close(&server->redirect_listener);
  duet__server_close_handles(server);
  duet__sessions_close_handles(&server->sessions);
  uv_run(&server->loop, UV_RUN_DEFAULT);
  if (server->lws) {
    lws_context_destroy(server->lws);
    uv_run(&server->loop, UV_RUN_DEFAULT);
  }
  duet__mounts_free(&server->mounts);
  duet__sessions_destroy(&server->sessions);
  duet__metrics_destroy(&server->metrics);
  if (uv_loop_close(&server->loop) != 0)
    DUET_WARN("the event loop still had open handles at exit");
}

int duet_server_run(const duet_options_t *opt) {
  static duet_server_t server_storage;
  duet_server_t *server = &server_storage;
  memset(server, 0, sizeof *server);
  server->opt = opt;
  server->listener.fd = server->admin_listener.fd = server->redirect_listener.fd = -1;
  duet__log_set_level(opt->log_level);
  if (opt->worker_index) {
    char name[32];
    snprintf(name, sizeof name, "duetd w%u", opt->worker_index);
    duet__log_set_name(name);
  }
  lws_set_log_level(opt->log_level >= DUET_LOG_DEBUG ? LLL_ERR | LLL_WARN | LLL_NOTICE : LLL_ERR, lws_log_to_ours);
  signal(SIGPIPE, SIG_IGN);
  if (uv_loop_init(&server->loop) != 0) {
    DUET_ERROR("cannot create the event loop");
    return DUET_EIO;
  }
  int listed = 0;
  int r = start(server, &listed);
  int ran = r == 0 && !listed;
  if (ran)
    uv_run(&server->loop, UV_RUN_DEFAULT);
  tear_down(server);
  if (ran)
    DUET_INFO("stopped");
  return r;
}
