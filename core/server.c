#include "server.h"

#include "duet_build_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libwebsockets.h does not include uv.h; server.h did, first. */
#include <libwebsockets.h>
#include <openssl/ssl.h>

#include "dev_cert.h"
#include "fd_limit.h"
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

/* Refuses a client's message: the error answer, its metric and the
 * "duet.rejected" event (the audit log records it). */
static void reject(duet_server_t *server, duet_conn_t *conn, const char *code, const char *message) {
  duet__conn_send_error(&server->conns, conn, code, message);
  duet__metrics_count_error(&server->metrics, code);
  char code_json[128], json[160];
  duet__json_escape(code_json, sizeof code_json, code);
  int n = snprintf(json, sizeof json, "{\"code\":%s}", code_json);
  duet_event_t event = {"duet.rejected", conn->id, json, (size_t)n};
  duet__plugins_emit(server->plugins, &event);
}

/* A connection stops waiting for its first accepted message. */
static void mark_ready(duet_server_t *server, duet_conn_t *conn) {
  if (conn->ready)
    return;
  conn->ready = true;
  if (conn->wait_prev)
    conn->wait_prev->wait_next = conn->wait_next;
  else
    server->waiting_head = conn->wait_next;
  if (conn->wait_next)
    conn->wait_next->wait_prev = conn->wait_prev;
  else
    server->waiting_tail = conn->wait_prev;
  conn->wait_prev = conn->wait_next = NULL;
}

/* Token bucket: rate per second, bursts up to twice that. */
static int take_token(duet_server_t *server, duet_conn_t *conn) {
  double rate = (double)server->opt->max_messages_per_second;
  uint64_t now = uv_now(&server->loop);
  conn->tokens += (double)(now - conn->tokens_at) * rate / 1000.0;
  if (conn->tokens > 2 * rate)
    conn->tokens = 2 * rate;
  conn->tokens_at = now;
  if (conn->tokens < 1.0)
    return 0;
  conn->tokens -= 1.0;
  return 1;
}

static void dispatch(duet_server_t *server, duet_conn_t *conn, const char *data, size_t len) {
  server->metrics.messages++;
  if (!take_token(server, conn)) {
    /* One answer per second at most: a flood must not be echoed back. */
    uint64_t now = uv_now(&server->loop);
    if (now - conn->rate_error_at >= 1000 || conn->rate_error_at == 0) {
      conn->rate_error_at = now;
      char text[160];
      snprintf(text, sizeof text, "Too many messages: this server accepts %u per second per connection.",
               server->opt->max_messages_per_second);
      reject(server, conn, "rate-limited", text);
    }
    return;
  }
  duet_msg_t msg;
  const char *why = NULL;
  if (duet__message_decode(data, len, &msg, &why) != 0) {
    char text[300];
    snprintf(text, sizeof text, "The message is not a valid JSON object: %s", why);
    reject(server, conn, "malformed", text);
    return;
  }
  duet_reject_t verdict = {NULL, NULL};
  if (duet__plugins_on_message(server->plugins, conn->id, &msg, &verdict) == DUET_REJECT)
    reject(server, conn, verdict.code, verdict.message);
  else
    mark_ready(server, conn);
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
    reject(server, conn, "binary-unsupported", "Binary frames are not supported: send each message as a text frame.");
  } else if (conn->rx_refused == 1) {
    char text[160];
    snprintf(text, sizeof text, "The message is larger than this server's limit of %zu bytes.", max);
    reject(server, conn, "too-large", text);
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

/* glibc keeps freed memory until asked: after a mass disconnect (100+ MB),
 * and after a burst of TLS handshakes, whose scratch memory leaves holes
 * between the connections that stay (~3 KiB per connection). Give it back
 * now and then, not per connection. And a flood that stopped still gets
 * the summary of the log lines it caused. */
static void housekeeping(uv_timer_t *timer) {
  duet_server_t *server = timer->data;
  if (server->churn_since_trim >= 256) {
    server->churn_since_trim = 0;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
  }
  duet__log_flush_suppressed();
}

void duet__server_metrics_live(const duet_server_t *server, duet_metrics_live_t *live) {
  const duet_listener_t *listeners[] = {&server->listener, &server->admin_listener, &server->redirect_listener};
  memset(live, 0, sizeof *live);
  live->connections_open = server->conns.live;
  live->uptime_s = (double)(uv_now(&server->loop) - server->started_ms) / 1000.0;
  for (size_t i = 0; i < sizeof listeners / sizeof listeners[0]; i++) {
    live->connections_shed += listeners[i]->shed;
    live->accept_pauses += listeners[i]->pauses;
    live->adoptions_refused += listeners[i]->refused;
  }
  live->open_files_limit = server->open_files_limit;
  live->queued_bytes = server->conns.queued_bytes_total;
  live->queued_bytes_peak = server->conns.queued_bytes_peak;
  live->queued_bytes_limit = server->conns.max_queued_bytes_total;
  live->queue_budget_closes = server->conns.budget_closes;
  live->log_lines_suppressed = duet__log_suppressed_total();
}

static void on_closed(duet_server_t *server, duet_conn_t *conn) {
  server->churn_since_trim++;
  duet_close_reason_t why = conn->closing ? conn->close_why : DUET_CLOSE_CLIENT;
  server->metrics.closed[why]++;
  if (!conn->plugins_told) {
    conn->plugins_told = true;
    duet__plugins_on_close(server->plugins, conn->id, why);
  }
  mark_ready(server, conn);
  if (conn->ip)
    duet__ip_table_release(&server->ips, conn->ip);
  char name[64];
  DUET_DEBUG("connection %s closed", duet__conn_name(conn, name));
  duet__conns_remove(&server->conns, conn);
  /* During teardown lws closes what is left; a stop then would cut short the
   * loop runs that let its handles close. */
  if (server->shutting_down && server->conns.live == 0 && !server->tearing_down)
    uv_stop(&server->loop);
}

/* Plugins hear of a close as soon as it starts, on the next loop turn:
 * not inside the call that asked for it (a plugin may be mid-update), and
 * not after a close handshake that a dead peer never completes. */
static void tell_closing(uv_timer_t *timer) {
  duet_server_t *server = timer->data;
  for (size_t i = 0; i < server->closing_count; i++) {
    duet_conn_t *conn = duet__conns_get(&server->conns, server->closing_ids[i]);
    if (conn && !conn->plugins_told) {
      conn->plugins_told = true;
      duet__plugins_on_close(server->plugins, conn->id, conn->close_why);
    }
  }
  server->closing_count = 0;
}

static void on_closing(void *data, duet_conn_t *conn) {
  duet_server_t *server = data;
  if (conn->plugins_told || server->tearing_down)
    return;
  if (server->closing_count == server->closing_cap) {
    size_t cap = server->closing_cap ? server->closing_cap * 2 : 64;
    uint64_t *ids = realloc(server->closing_ids, cap * sizeof *ids);
    if (!ids)
      return; /* on_closed tells the plugins later instead */
    server->closing_ids = ids;
    server->closing_cap = cap;
  }
  server->closing_ids[server->closing_count++] = conn->id;
  uv_timer_start(&server->closing_timer, tell_closing, 0, 0);
}

/* Cross-site WebSocket hijacking: a browser page from another origin must
 * not reach signaling with the user's network position. Clients that send no
 * Origin are not browsers and cannot be abused this way. */
static int origin_allowed(duet_server_t *server, struct lws *wsi) {
  const duet_options_t *opt = server->opt;
  char origin[256], host[256], own[300];
  int n = lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN);
  if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) <= 0 || opt->allow_any_origin)
    return 1;
  if (n <= 0)
    goto refuse; /* longer than any origin we could allow */
  for (size_t i = 0; i < opt->allow_origin_count; i++)
    if (strcmp(origin, opt->allow_origins[i]) == 0)
      return 1;
  if (lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST) > 0) {
    /* Behind a TLS proxy (--no-tls) the page is https although we are not. */
    snprintf(own, sizeof own, "https://%s", host);
    if (strcmp(origin, own) == 0)
      return 1;
    snprintf(own, sizeof own, "http://%s", host);
    if (!opt->tls && strcmp(origin, own) == 0)
      return 1;
  }
refuse:
  DUET_WARN_LIMITED("refused origin", "refused a WebSocket from origin %.100s (allow it with --allow-origin)",
                    n > 0 ? origin : "(too long)");
  duet__metrics_count_error(&server->metrics, "origin-refused");
  return 0;
}

/* Records what plugins may ask about a connection (conn_info). */
static void describe_conn(duet_server_t *server, struct lws *wsi, duet_conn_t *conn) {
  struct sockaddr_storage sa;
  socklen_t sa_len = sizeof sa;
  snprintf(conn->addr, sizeof conn->addr, "?");
  if (getpeername(lws_get_socket_fd(wsi), (struct sockaddr *)&sa, &sa_len) == 0) {
    if (sa.ss_family == AF_INET6) {
      struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
      /* Show IPv4 clients of the dual-stack socket as plain IPv4. */
      if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
        inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], conn->addr, sizeof conn->addr);
      else
        inet_ntop(AF_INET6, &in6->sin6_addr, conn->addr, sizeof conn->addr);
      conn->port = ntohs(in6->sin6_port);
    } else if (sa.ss_family == AF_INET) {
      struct sockaddr_in *in4 = (struct sockaddr_in *)&sa;
      inet_ntop(AF_INET, &in4->sin_addr, conn->addr, sizeof conn->addr);
      conn->port = ntohs(in4->sin_port);
    }
  }
  int ua_len = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_USER_AGENT);
  if (ua_len > 0) {
    size_t keep = ua_len > 255 ? 256 : (size_t)ua_len + 1;
    conn->user_agent = malloc(keep);
    if (conn->user_agent && lws_hdr_copy(wsi, conn->user_agent, (int)keep, WSI_TOKEN_HTTP_USER_AGENT) < 0)
      conn->user_agent[0] = '\0';
  }
  SSL *ssl = lws_get_ssl(wsi);
  conn->tls_version = ssl ? SSL_get_version(ssl) : NULL;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  conn->connected_unix_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
  conn->last_rx_ms = conn->tokens_at = conn->tokens_at_connect = uv_now(&server->loop);
  conn->tokens = 2.0 * server->opt->max_messages_per_second;
}

/* Applies the connection limits; a connection over one is told and closed
 * (plugins never see it). Otherwise it waits for its first message. */
static int admit(duet_server_t *server, duet_conn_t *conn) {
  const duet_options_t *opt = server->opt;
  conn->ip = duet__ip_table_acquire(&server->ips, conn->addr);
  const char *code = NULL;
  char text[200];
  if (server->conns.live > opt->max_connections) {
    code = "server-full";
    snprintf(text, sizeof text, "This server is at its limit of %zu connections; try again later.",
             opt->max_connections);
  } else if (conn->ip && conn->ip->count > opt->max_connections_per_ip) {
    code = "too-many-connections";
    snprintf(text, sizeof text, "Your address already has %zu connections, this server's limit.",
             opt->max_connections_per_ip);
  }
  if (code) {
    char name[64];
    if (code[0] == 's')
      DUET_WARN_LIMITED("server full", "connection %s refused: %s", duet__conn_name(conn, name), code);
    else
      DUET_WARN_LIMITED("too many connections from one address", "connection %s refused: %s",
                        duet__conn_name(conn, name), code);
    conn->plugins_told = true; /* plugins never heard of it */
    conn->ready = true;
    reject(server, conn, code, text);
    duet__conn_close(conn, code[0] == 's' ? 1013 : LWS_CLOSE_STATUS_POLICY_VIOLATION, code, DUET_CLOSE_LIMIT);
    return 0;
  }
  conn->wait_prev = server->waiting_tail;
  if (server->waiting_tail)
    server->waiting_tail->wait_next = conn;
  else
    server->waiting_head = conn;
  server->waiting_tail = conn;
  return 1;
}

/* Connections wait in arrival order, so the oldest is at the head: each
 * tick looks only at those whose time is up. */
static void check_open_timeouts(uv_timer_t *timer) {
  duet_server_t *server = timer->data;
  uint64_t now = uv_now(&server->loop), limit = (uint64_t)(server->opt->open_timeout_s * 1000.0);
  while (server->waiting_head && now - server->waiting_head->tokens_at_connect >= limit) {
    duet_conn_t *conn = server->waiting_head;
    mark_ready(server, conn);
    reject(server, conn, "open-timeout", "No message came in time after connecting; reconnect and send open.");
    duet__conn_close(conn, 4408, "open timeout", DUET_CLOSE_TIMEOUT);
  }
}

static int callback_signaling(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                              size_t len) {
  signaling_session_t *session = user;
  duet_server_t *server = server_of(wsi);

  switch (reason) {
  case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
    /* The admin and redirect sockets are plain HTTP for their one job: no signaling there. */
    if (lws_get_opaque_user_data(wsi))
      return 1;
    /* lws 4.1 upgrades odd requests too: RFC 6455 wants a GET with version 13. */
    char version[8] = "";
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0 ||
        lws_hdr_copy(wsi, version, sizeof version, WSI_TOKEN_VERSION) <= 0 || strcmp(version, "13") != 0)
      return 1;
    return origin_allowed(server, wsi) ? 0 : 1;
  }
  case LWS_CALLBACK_ESTABLISHED: {
    if (server->shutting_down)
      return -1;
    duet_conn_t *conn = duet__conns_add(&server->conns, wsi);
    if (!conn) {
      DUET_ERROR("out of memory accepting a connection");
      return -1;
    }
    session->conn = conn;
    server->churn_since_trim++;
    describe_conn(server, wsi, conn);
    server->metrics.accepted++;
    char name[64];
    DUET_DEBUG("connection %s opened", duet__conn_name(conn, name));
    if (admit(server, conn))
      duet__plugins_on_open(server->plugins, conn->id);
    return 0;
  }
  case LWS_CALLBACK_RECEIVE:
    if (session->conn) {
      session->conn->last_rx_ms = uv_now(&server->loop);
      if (!session->conn->closing)
        on_receive(server, wsi, session->conn, in, len);
    }
    return 0;
  case LWS_CALLBACK_RECEIVE_PONG:
    if (session->conn)
      session->conn->last_rx_ms = uv_now(&server->loop);
    return 0;
  case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    /* Plugins may tell a deliberate hang-up (1000, 1001) from a lost link. */
    if (session->conn && len >= 2)
      session->conn->client_close_code = (uint16_t)(((const unsigned char *)in)[0] << 8 | ((const unsigned char *)in)[1]);
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
    /* user is the vhost's SSL_CTX here. Session tickets cost memory per
     * connection and buy little for long-lived WebSockets. */
    duet_server_t *server = lws_context_user(lws_get_context(wsi));
    SSL_CTX *ctx = user;
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_min_proto_version(ctx, server->opt->tls_min_13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    server->ssl_ctx = ctx;
    return 0;
  }
  return duet__http_static_callback(wsi, (int)reason, user, in, len);
}

static void lws_log_to_ours(int level, const char *line) {
  /* lws logs some failures per connection (TLS errors among them): a few
   * lines in full per interval, the rest counted. */
  static duet_log_limit_t limit = {.kind = "libwebsockets", .burst = 5};
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    n--;
  duet__log_limited(&limit, level == LLL_ERR ? DUET_LOG_ERROR : level == LLL_WARN ? DUET_LOG_WARN : DUET_LOG_DEBUG,
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
  duet__listener_close(&server->admin_listener);
  duet__listener_close(&server->redirect_listener);
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
      duet__conn_close(conn, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down", DUET_CLOSE_SHUTDOWN);
  }
  if (server->conns.live == 0)
    uv_stop(&server->loop);
  else
    uv_timer_start(&server->shutdown_timer, grace_over, SHUTDOWN_GRACE_MS, 0);
}

/* New handshakes get the new pair; open connections keep theirs. A pair
 * that does not load or match is refused whole, before the live one is touched. */
static void reload_certificate(duet_server_t *server) {
  if (!server->ssl_ctx || !server->cert_path[0])
    return;
  SSL_CTX *check = SSL_CTX_new(TLS_server_method());
  int ok = check && SSL_CTX_use_certificate_chain_file(check, server->cert_path) == 1 &&
           SSL_CTX_use_PrivateKey_file(check, server->key_path, SSL_FILETYPE_PEM) == 1 &&
           SSL_CTX_check_private_key(check) == 1;
  SSL_CTX_free(check);
  if (!ok) {
    DUET_ERROR("SIGHUP: the certificate %s or key %s does not load or they do not match; still using the old pair",
               server->cert_path, server->key_path);
    return;
  }
  if (SSL_CTX_use_certificate_chain_file(server->ssl_ctx, server->cert_path) != 1 ||
      SSL_CTX_use_PrivateKey_file(server->ssl_ctx, server->key_path, SSL_FILETYPE_PEM) != 1) {
    DUET_ERROR("SIGHUP: loading %s failed after it checked out; new handshakes may fail", server->cert_path);
    return;
  }
  DUET_INFO("SIGHUP: new TLS handshakes use %s; open connections keep their certificate", server->cert_path);
}

static void on_signal(uv_signal_t *handle, int signum) {
  duet_server_t *server = handle->data;
  if (signum == SIGHUP) {
    reload_certificate(server);
    DUET_INFO("SIGHUP: telling plugins to reopen their files");
    duet_event_t event = {"duet.reload", 0, NULL, 0};
    duet__plugins_emit(server->plugins, &event);
    return;
  }
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
  uv_close((uv_handle_t *)&server->sighup, NULL);
  uv_close((uv_handle_t *)&server->shutdown_timer, NULL);
  uv_close((uv_handle_t *)&server->open_timer, NULL);
  uv_close((uv_handle_t *)&server->closing_timer, NULL);
  uv_close((uv_handle_t *)&server->housekeeping_timer, NULL);
}

int duet_server_run(const duet_options_t *opt) {
  static duet_server_t server_storage;
  duet_server_t *server = &server_storage;
  memset(server, 0, sizeof *server);
  server->opt = opt;
  int exit_code = 1;
  int ran = 0;
  server->listener.fd = server->admin_listener.fd = server->redirect_listener.fd = -1;
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
  duet__conns_init(&server->conns, duet__plugins_count(server->plugins), opt->max_queued_bytes,
                   opt->max_queued_bytes_total);
  server->conns.on_closing = on_closing;
  server->conns.on_closing_data = server;
  uv_update_time(&server->loop);
  server->started_ms = uv_now(&server->loop);
  server->open_files_limit = duet__fd_limit_raise(opt->max_connections);

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
      /* A 128-byte receive buffer (not 4 KiB) per connection: larger messages
       * arrive in pieces and are reassembled in on_receive. Writes go out up to
       * one TLS record (16 KiB) at a time, as conn.c batches them. */
      {"duet", callback_signaling, sizeof(signaling_session_t), 128, 0, NULL, 16384},
      {NULL, NULL, 0, 0, 0, NULL, 0},
  };
  void *loops[] = {&server->loop};

  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
  /* lws gives each vhost a client SSL_CTX too and fills it with the system CA
   * bundle (~0.9 MB); duetd never connects out. */
  if (opt->tls)
    info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
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
  /* Slow clients (slowloris) get this long for the handshake and headers. */
  info.timeout_secs = opt->http_timeout_s;
  info.timeout_secs_ah_idle = opt->http_timeout_s;
  info.max_http_header_data = (unsigned short)opt->max_header_bytes;
  info.keepalive_timeout = 5;
  /* No lws idle timer per connection: the keepalive plugin pings. lws 4.1
   * keeps its timers in a sorted list, so with one per connection every new
   * connection walked all the others (0.23 -> 0.35 ms CPU per connection
   * from 2,000 to 10,000 held). */
  static const lws_retry_bo_t no_idle_timer = {.secs_since_valid_ping = 0, .secs_since_valid_hangup = 0};
  info.retry_and_idle_policy = &no_idle_timer;
  /* Headers on every HTTP response. lws's own "best practices" set has no
   * manifest-src, which blocks the web app manifest. */
  struct lws_protocol_vhost_options hsts = {NULL, NULL, "strict-transport-security:", server->hsts_value};
  struct lws_protocol_vhost_options referrer = {NULL, NULL, "referrer-policy:", "no-referrer"};
  struct lws_protocol_vhost_options frames = {&referrer, NULL, "x-frame-options:", "deny"};
  struct lws_protocol_vhost_options nosniff = {&frames, NULL, "x-content-type-options:", "nosniff"};
  struct lws_protocol_vhost_options csp = {
      &nosniff, NULL, "content-security-policy:",
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
      "connect-src 'self' ws: wss:; media-src 'self' blob: mediastream:; manifest-src 'self'; "
      "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"};
  info.headers = &csp;
  if (opt->tls) {
    info.ssl_cert_filepath = cert;
    info.ssl_private_key_filepath = key;
    snprintf(server->cert_path, sizeof server->cert_path, "%s", cert);
    snprintf(server->key_path, sizeof server->key_path, "%s", key);
    /* TLS 1.2 with forward-secret AEAD suites only, TLS 1.3 preferred;
     * no compression (CRIME) and no renegotiation. */
    info.ssl_cipher_list = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                           "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                           "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
    info.tls1_3_plus_cipher_list = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
    info.ssl_options_set = (long)(SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                  SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1);
    if (opt->hsts_s) {
      snprintf(server->hsts_value, sizeof server->hsts_value, "max-age=%u", opt->hsts_s);
      referrer.next = &hsts;
    }
  }

  server->lws = lws_create_context(&info);
  if (!server->lws) {
    DUET_ERROR("could not start libwebsockets (see its error above: a bad certificate or key, or a missing "
               "libwebsockets-evlib-uv package?)");
    goto out_lws;
  }
  server->vhost = lws_create_vhost(server->lws, &info);
  int port = 0;
  if (!server->vhost) {
    DUET_ERROR("could not set up TLS or HTTP (see the libwebsockets error above: is the certificate or key bad?)");
    goto out_lws;
  }
  if (duet__listener_open(&server->listener, &server->loop, server->vhost, opt->address, opt->port, &port, err,
                          sizeof err) != 0) {
    DUET_ERROR("%s", err);
    goto out_lws;
  }
  if (opt->redirect_port) {
    int redirect_port = 0;
    server->redirect_listener.plain_http = 1;
    server->redirect_listener.tag = &server->redirect_listener;
    if (duet__listener_open(&server->redirect_listener, &server->loop, server->vhost, opt->address,
                            opt->redirect_port, &redirect_port, err, sizeof err) != 0) {
      DUET_ERROR("--http-redirect-port: %s", err);
      goto out_lws;
    }
    server->public_port = port;
    DUET_INFO("redirecting plain HTTP on port %d to HTTPS%s", redirect_port,
              opt->acme_webroot ? " (and serving ACME challenges)" : "");
  }
  if (opt->admin_address) {
    /* Health and metrics on their own plain-HTTP socket; the HTTP callback
     * tells its connections apart by the listener's tag. */
    int admin_port = 0;
    server->admin_listener.plain_http = 1;
    server->admin_listener.tag = &server->admin_listener;
    if (duet__listener_open(&server->admin_listener, &server->loop, server->vhost, opt->admin_address,
                            opt->admin_port, &admin_port, err, sizeof err) != 0) {
      DUET_ERROR("--admin-listen: %s", err);
      goto out_lws;
    }
    DUET_INFO("health and metrics on http://%s%s%s:%d/", strchr(opt->admin_address, ':') ? "[" : "",
              opt->admin_address, strchr(opt->admin_address, ':') ? "]" : "", admin_port);
  }
  uv_signal_init(&server->loop, &server->sigint);
  uv_signal_init(&server->loop, &server->sigterm);
  uv_signal_init(&server->loop, &server->sighup);
  uv_timer_init(&server->loop, &server->shutdown_timer);
  uv_timer_init(&server->loop, &server->open_timer);
  uv_timer_init(&server->loop, &server->closing_timer);
  uv_timer_init(&server->loop, &server->housekeeping_timer);
  server->closing_timer.data = server->housekeeping_timer.data = server;
  uv_timer_start(&server->housekeeping_timer, housekeeping, 5000, 5000);
  server->sigint.data = server->sigterm.data = server->sighup.data = server;
  server->shutdown_timer.data = server->open_timer.data = server;
  uv_signal_start(&server->sigint, on_signal, SIGINT);
  uv_signal_start(&server->sigterm, on_signal, SIGTERM);
  uv_signal_start(&server->sighup, on_signal, SIGHUP);
  uint64_t tick = (uint64_t)(opt->open_timeout_s * 1000.0 / 4);
  uv_timer_start(&server->open_timer, check_open_timeouts, tick ? tick : 1, tick ? tick : 1);
  /* Logged last: whoever waits for this line may signal us at once. */
  const char *scheme = opt->tls ? "https" : "http";
  if (opt->address)
    DUET_INFO("listening on %s://%s%s%s:%d/ (web root %s)", scheme, strchr(opt->address, ':') ? "[" : "",
              opt->address, strchr(opt->address, ':') ? "]" : "", port, server->mounts[server->mount_count - 1].root);
  else
    DUET_INFO("listening on %s://localhost:%d/ on every address, %s (web root %s)", scheme, port,
              DUET_WITH_IPV6 ? "IPv4 and IPv6" : "IPv4 only (built with -Dipv6=false)",
              server->mounts[server->mount_count - 1].root);

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
  duet__listener_close(&server->admin_listener);
  duet__listener_close(&server->redirect_listener);
  close_own_handles(server);
  uv_run(&server->loop, UV_RUN_DEFAULT);
  if (server->lws) {
    lws_context_destroy(server->lws);
    uv_run(&server->loop, UV_RUN_DEFAULT);
  }
out_conns:
  free_mounts(server);
  duet__conns_destroy(&server->conns);
  duet__ip_table_destroy(&server->ips);
  free(server->closing_ids);
  duet__metrics_destroy(&server->metrics);
out_plugins:
  duet__plugins_unload(server->plugins);
  uv_run(&server->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&server->loop) != 0)
    DUET_WARN("the event loop still had open handles at exit");
  if (ran)
    DUET_INFO("stopped");
  return exit_code;
}
