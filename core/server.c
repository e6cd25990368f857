#include "server.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libwebsockets.h does not include uv.h; server.h did, first. */
#include <libwebsockets.h>
#include <openssl/ssl.h>

#include "dev_cert.h"
#include "listener.h"
#include "log.h"
#include "message.h"
#include "paths.h"
#include "web_path.h"

/* Grace period for clients to receive their close frames at shutdown. */
#define SHUTDOWN_GRACE_MS 2000

typedef struct signaling_session {
  duet_conn_t *conn;
} signaling_session_t;

static duet_server_t *server_of(struct lws *wsi) { return lws_context_user(lws_get_context(wsi)); }

int duet__server_send_error(duet_server_t *server, duet_conn_t *conn, const char *code,
                            const char *message) {
  char code_json[128], message_json[512], frame[700];
  duet__json_escape(code_json, sizeof code_json, code);
  duet__json_escape(message_json, sizeof message_json, message);
  int n = snprintf(frame, sizeof frame, "{\"error\":{\"code\":%s,\"message\":%s}}", code_json, message_json);
  DUET_DEBUG("connection %s: error %s: %s", conn->peer, code, message);
  return duet__conn_send(&server->conns, conn, frame, (size_t)n);
}

static void dispatch(duet_server_t *server, duet_conn_t *conn, const char *data, size_t len) {
  duet_msg_t msg;
  const char *why = NULL;
  if (duet__message_decode(data, len, &msg, &why) != 0) {
    char text[300];
    snprintf(text, sizeof text, "The message is not a valid JSON object: %s", why);
    duet__server_send_error(server, conn, "malformed", text);
    return;
  }
  duet_reject_t reject = {NULL, NULL};
  if (duet__plugins_on_message(server->plugins, conn->id, &msg, &reject) == DUET_REJECT)
    duet__server_send_error(server, conn, reject.code, reject.message);
}

/* Reassembles fragments into one message, refusing binary and oversize
 * messages as a whole (the rest of a refused message is skipped). */
static void on_receive(duet_server_t *server, struct lws *wsi, duet_conn_t *conn, const char *in,
                       size_t len) {
  size_t max = server->opt->max_message_bytes;
  int first = lws_is_first_fragment(wsi);
  int final = lws_is_final_fragment(wsi);
  if (first) {
    conn->rx_len = 0;
    conn->rx_refused = lws_frame_is_binary(wsi) ? 2 : 0;
  }
  if (first && final && !conn->rx_refused && len <= max) {
    dispatch(server, conn, in, len); /* the common case needs no copy */
    return;
  }
  if (!conn->rx_refused) {
    if (conn->rx_len + len > max) {
      conn->rx_refused = 1;
    } else {
      if (conn->rx_len + len > conn->rx_cap) {
        size_t cap = conn->rx_cap ? conn->rx_cap : 1024;
        while (cap < conn->rx_len + len)
          cap *= 2;
        if (cap > max)
          cap = max;
        char *rx = realloc(conn->rx, cap);
        if (!rx) {
          conn->rx_refused = 1;
          goto check_final;
        }
        conn->rx = rx;
        conn->rx_cap = cap;
      }
      memcpy(conn->rx + conn->rx_len, in, len);
      conn->rx_len += len;
    }
  }
check_final:
  if (!final)
    return;
  if (conn->rx_refused == 2) {
    duet__server_send_error(server, conn, "binary-unsupported",
                            "Binary frames are not supported: send each message as a text frame.");
  } else if (conn->rx_refused == 1) {
    char text[160];
    snprintf(text, sizeof text, "The message is larger than this server's limit of %zu bytes.", max);
    duet__server_send_error(server, conn, "too-large", text);
  } else {
    dispatch(server, conn, conn->rx, conn->rx_len);
  }
  conn->rx_len = 0;
  conn->rx_refused = 0;
  /* Keep a small buffer for the next fragmented message; give big ones back. */
  if (conn->rx_cap > 16 * 1024) {
    free(conn->rx);
    conn->rx = NULL;
    conn->rx_cap = 0;
  }
}

static void on_closed(duet_server_t *server, duet_conn_t *conn) {
  if (!conn->plugins_told) {
    conn->plugins_told = true;
    duet__plugins_on_close(server->plugins, conn->id, conn->closing ? DUET_CLOSE_SERVER : DUET_CLOSE_CLIENT);
  }
  DUET_DEBUG("connection %s closed", conn->peer);
  duet__conns_remove(&server->conns, conn);
  /* During teardown lws closes what is left; a stop then would cut short the
   * loop runs that let its handles close. */
  if (server->shutting_down && server->conns.live == 0 && !server->tearing_down)
    uv_stop(&server->loop);
}

static int callback_signaling(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                              size_t len) {
  signaling_session_t *session = user;
  duet_server_t *server = server_of(wsi);

  switch (reason) {
  case LWS_CALLBACK_ESTABLISHED: {
    if (server->shutting_down)
      return -1;
    duet_conn_t *conn = duet__conns_add(&server->conns, wsi);
    if (!conn) {
      DUET_ERROR("out of memory accepting a connection");
      return -1;
    }
    char ip[48] = "?";
    lws_get_peer_simple(wsi, ip, sizeof ip);
    snprintf(conn->peer, sizeof conn->peer, "%s#%llu", ip, (unsigned long long)(conn->id & 0xffffffffu));
    session->conn = conn;
    DUET_DEBUG("connection %s opened", conn->peer);
    duet__plugins_on_open(server->plugins, conn->id);
    return 0;
  }
  case LWS_CALLBACK_RECEIVE:
    if (session->conn && !session->conn->closing)
      on_receive(server, wsi, session->conn, in, len);
    return 0;
  case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    /* The answer to our own close frame: end here rather than echo it. */
    return session->conn && session->conn->close_sent ? -1 : 0;
  case LWS_CALLBACK_SERVER_WRITEABLE:
    return session->conn ? duet__conn_on_writeable(session->conn) : 0;
  case LWS_CALLBACK_CLOSED:
    if (session->conn) {
      on_closed(server, session->conn);
      session->conn = NULL;
    }
    return 0;
  default:
    return 0;
  }
}

static int callback_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  if (reason == LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS) {
    /* Session tickets cost memory per connection and buy little for
     * long-lived WebSockets; user is the vhost's SSL_CTX here. */
    SSL_CTX_set_num_tickets((SSL_CTX *)user, 0);
    return 0;
  }
  return duet__http_static_callback(wsi, (int)reason, user, in, len);
}

static void lws_log_to_ours(int level, const char *line) {
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    n--;
  duet__log(level == LLL_ERR ? DUET_LOG_ERROR : level == LLL_WARN ? DUET_LOG_WARN : DUET_LOG_DEBUG,
            "libwebsockets: %.*s", (int)n, line);
}

static void grace_over(uv_timer_t *timer) {
  duet_server_t *server = timer->data;
  DUET_WARN("%zu connection(s) did not close in time; dropping them", server->conns.live);
  uv_stop(&server->loop);
}

static void begin_shutdown(duet_server_t *server, const char *why) {
  if (server->shutting_down)
    return;
  server->shutting_down = 1;
  duet__listener_close(&server->listener);
  DUET_INFO("%s: shutting down, closing %zu connection(s)", why, server->conns.live);
  /* Tell the plugins first, while every partner can still be sent to. */
  for (size_t i = 0; i < server->conns.slot_count; i++) {
    duet_conn_t *conn = server->conns.slots[i];
    if (conn && !conn->plugins_told) {
      conn->plugins_told = true;
      duet__plugins_on_close(server->plugins, conn->id, DUET_CLOSE_SHUTDOWN);
    }
  }
  for (size_t i = 0; i < server->conns.slot_count; i++) {
    duet_conn_t *conn = server->conns.slots[i];
    if (conn)
      duet__conn_close(conn, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
  }
  if (server->conns.live == 0)
    uv_stop(&server->loop);
  else
    uv_timer_start(&server->shutdown_timer, grace_over, SHUTDOWN_GRACE_MS, 0);
}

static void on_signal(uv_signal_t *handle, int signum) {
  duet_server_t *server = handle->data;
  if (server->shutting_down) {
    DUET_WARN("second signal: stopping now");
    uv_stop(&server->loop);
    return;
  }
  begin_shutdown(server, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static int compare_mounts(const void *a, const void *b) {
  const duet_server_mount_t *x = a, *y = b;
  return x->url_len < y->url_len ? 1 : x->url_len > y->url_len ? -1 : 0;
}

/* Resolves every served folder once; checks that no secret lies inside one. */
static int prepare_mounts(duet_server_t *server, const char *key_path, const char *state_dir) {
  const duet_options_t *opt = server->opt;
  server->mount_count = 1 + opt->mount_count;
  server->mounts = calloc(server->mount_count, sizeof *server->mounts);
  if (!server->mounts)
    return -1;
  for (size_t i = 0; i < server->mount_count; i++) {
    duet_server_mount_t *m = &server->mounts[i];
    const char *dir = i == 0 ? opt->web_root : opt->mounts[i - 1].dir;
    m->url = i == 0 ? "" : opt->mounts[i - 1].url;
    m->url_len = strlen(m->url);
    m->root = realpath(dir, NULL);
    if (!m->root) {
      DUET_ERROR("cannot serve %s at %s/: %s (check --%s)", dir, m->url, strerror(errno),
                 i == 0 ? "web-root" : "mount");
      return -1;
    }
    if (key_path) {
      char *key_real = realpath(key_path, NULL);
      int inside = key_real && duet__path_is_inside(key_real, m->root);
      free(key_real);
      if (inside) {
        DUET_ERROR("refusing to start: the TLS private key %s lies inside the served folder %s, so anyone "
                   "could download it; move the key out of every served folder",
                   key_path, m->root);
        return -1;
      }
    }
    char *state_real = state_dir ? realpath(state_dir, NULL) : NULL;
    int state_inside = state_real && duet__path_is_inside(state_real, m->root);
    free(state_real);
    if (state_inside) {
      DUET_ERROR("refusing to start: the state folder %s (it holds private keys) lies inside the served "
                 "folder %s; choose another --state-dir",
                 state_dir, m->root);
      return -1;
    }
  }
  qsort(server->mounts, server->mount_count, sizeof *server->mounts, compare_mounts);
  return 0;
}

static void free_mounts(duet_server_t *server) {
  for (size_t i = 0; i < server->mount_count; i++)
    free(server->mounts[i].root);
  free(server->mounts);
  server->mounts = NULL;
}

static void close_own_handles(duet_server_t *server) {
  if (!server->handles_started)
    return;
  server->handles_started = 0;
  uv_close((uv_handle_t *)&server->sigint, NULL);
  uv_close((uv_handle_t *)&server->sigterm, NULL);
  uv_close((uv_handle_t *)&server->shutdown_timer, NULL);
}

int duet_server_run(const duet_options_t *opt) {
  static duet_server_t server_storage;
  duet_server_t *server = &server_storage;
  memset(server, 0, sizeof *server);
  server->opt = opt;
  int exit_code = 1;
  int ran = 0;
  server->listener.fd = -1;
  char err[1024] = "";

  duet__log_set_level(opt->log_level);
  lws_set_log_level(opt->log_level >= DUET_LOG_DEBUG ? LLL_ERR | LLL_WARN | LLL_NOTICE : LLL_ERR,
                    lws_log_to_ours);
  signal(SIGPIPE, SIG_IGN);

  if (uv_loop_init(&server->loop) != 0) {
    DUET_ERROR("cannot create the event loop");
    return 1;
  }
  server->loop.data = server;

  int r = duet__plugins_load(&server->plugins, server, opt, err, sizeof err);
  if (r != 0) {
    DUET_ERROR("%s", err);
    exit_code = r == -2 ? 2 : 1;
    goto out_plugins;
  }
  if (opt->list_plugins) {
    duet__plugins_print(server->plugins);
    exit_code = 0;
    goto out_plugins;
  }
  duet__conns_init(&server->conns, duet__plugins_count(server->plugins), opt->max_queued_bytes);

  /* TLS material: the user's pair, or a development certificate we make. */
  char state_buf[PATH_MAX], cert_path[PATH_MAX], key_path[PATH_MAX];
  const char *state_dir = opt->state_dir ? opt->state_dir : duet__paths_default_state_dir(state_buf, sizeof state_buf);
  const char *cert = opt->cert, *key = opt->key;
  if (opt->tls && !cert) {
    int created = 0;
    if (duet__dev_cert_ensure(state_dir, cert_path, sizeof cert_path, key_path, sizeof key_path, &created, err,
                              sizeof err) != 0) {
      DUET_ERROR("%s", err);
      goto out_conns;
    }
    cert = cert_path;
    key = key_path;
    DUET_WARN("%s self-signed development certificate %s (key %s): browsers will warn about it; "
              "give --cert and --key for a real one",
              created ? "made a new" : "using the", cert, key);
  }
  if (prepare_mounts(server, opt->tls ? key : NULL, opt->tls && !opt->cert ? state_dir : NULL) != 0)
    goto out_conns;

  static const struct lws_protocol_vhost_options pvo_default = {NULL, NULL, "default", "1"};
  static const struct lws_protocol_vhost_options pvo = {NULL, &pvo_default, "duet", ""};
  const struct lws_protocols protocols[] = {
      {"http", callback_http, duet__http_static_session_size(), 0, 0, NULL, 0},
      {"duet", callback_signaling, sizeof(signaling_session_t), 0, 0, NULL, 4096},
      {NULL, NULL, 0, 0, 0, NULL, 0},
  };
  void *loops[] = {&server->loop};

  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE;
  if (opt->tls)
    info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  info.foreign_loops = loops;
  info.pcontext = &server->lws;
  info.user = server;
  info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* listener.c accepts */
  info.protocols = protocols;
  info.pvo = &pvo;
  info.vhost_name = "duet";
  /* HTTP/1.1 only: h2 costs memory per connection and some WebSocket
   * clients fail their upgrade when h2 is offered. */
  info.alpn = "http/1.1";
  if (opt->tls) {
    info.ssl_cert_filepath = cert;
    info.ssl_private_key_filepath = key;
  }

  server->lws = lws_create_context(&info);
  if (!server->lws) {
    DUET_ERROR("could not start libwebsockets (see its error above: a bad certificate or key, or a missing "
               "libwebsockets-evlib-uv package?)");
    goto out_lws;
  }
  server->vhost = lws_get_vhost_by_name(server->lws, "duet");
  int port = 0;
  if (!server->vhost || duet__listener_open(&server->listener, &server->loop, server->vhost, opt->address, opt->port,
                                            &port, err, sizeof err) != 0) {
    DUET_ERROR("%s", server->vhost ? err : "libwebsockets made no vhost");
    goto out_lws;
  }
  const char *scheme = opt->tls ? "https" : "http";
  if (opt->address)
    DUET_INFO("listening on %s://%s%s%s:%d/ (web root %s)", scheme, strchr(opt->address, ':') ? "[" : "",
              opt->address, strchr(opt->address, ':') ? "]" : "", port, server->mounts[server->mount_count - 1].root);
  else
    DUET_INFO("listening on %s://localhost:%d/ on every address, IPv4 and IPv6 (web root %s)", scheme, port,
              server->mounts[server->mount_count - 1].root);

  uv_signal_init(&server->loop, &server->sigint);
  uv_signal_init(&server->loop, &server->sigterm);
  uv_timer_init(&server->loop, &server->shutdown_timer);
  server->sigint.data = server->sigterm.data = server->shutdown_timer.data = server;
  uv_signal_start(&server->sigint, on_signal, SIGINT);
  uv_signal_start(&server->sigterm, on_signal, SIGTERM);
  server->handles_started = 1;

  uv_run(&server->loop, UV_RUN_DEFAULT);
  exit_code = 0;
  ran = 1;

out_lws:
  server->tearing_down = 1;
  /* Teardown order for a foreign loop (platform-notes.md): destroy lws,
   * close our handles, run the loop dry, destroy again if needed. */
  if (server->lws)
    lws_context_destroy(server->lws);
  duet__plugins_unload(server->plugins);
  server->plugins = NULL;
  duet__listener_close(&server->listener);
  close_own_handles(server);
  uv_run(&server->loop, UV_RUN_DEFAULT);
  if (server->lws) {
    lws_context_destroy(server->lws);
    uv_run(&server->loop, UV_RUN_DEFAULT);
  }
out_conns:
  free_mounts(server);
  duet__conns_destroy(&server->conns);
out_plugins:
  duet__plugins_unload(server->plugins);
  uv_run(&server->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&server->loop) != 0)
    DUET_WARN("the event loop still had open handles at exit");
  if (ran)
    DUET_INFO("stopped");
  return exit_code;
}
