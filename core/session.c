#include "session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <libwebsockets.h>
#include <openssl/ssl.h>

#include "log.h"
#include "message.h"
#include "reassembly.h"

/* What the session keeps per connection, in the user data lws allocates
 * for each signaling WebSocket (zeroed): freed in on_closed. */
typedef struct session {
  duet_conn_t *conn;
  duet_admission_slot_t admission;
  duet_reassembly_t rx; /* of a fragmented message, bounded by max_message_bytes */
  uint64_t last_rx_ms;  /* loop time of the last frame of any kind from the client */
  /* Rate limit: a token bucket refilled at max_messages_per_second. */
  double tokens;
  uint64_t tokens_at;
  uint64_t rate_error_at;
  /* What plugins may ask about the connection (conn_info). */
  char *user_agent;        /* of the upgrade request, or NULL */
  const char *tls_version; /* OpenSSL's static string, or NULL */
  uint64_t connected_unix_ms;
  uint16_t client_close_code; /* from the client's close frame, 0 if none */
  bool plugins_told;          /* on_close already delivered (or never due) */
} session_t;

size_t duet__sessions_session_size(void) { return sizeof(session_t); }

static session_t *session_of(const duet_conn_t *conn) { return lws_wsi_user(conn->wsi); }

bool duet__session_plugins_told(const duet_conn_t *conn) { return session_of(conn)->plugins_told; }

void duet__session_describe(const duet_conn_t *conn, uint64_t now, duet_conn_info_t *info) {
  const session_t *session = session_of(conn);
  info->remote_port = conn->port;
  snprintf(info->remote_addr, sizeof info->remote_addr, "%s", conn->addr);
  snprintf(info->user_agent, sizeof info->user_agent, "%s", session->user_agent ? session->user_agent : "");
  snprintf(info->tls_version, sizeof info->tls_version, "%s", session->tls_version ? session->tls_version : "");
  info->connected_unix_ms = session->connected_unix_ms;
  info->idle_ms = now > session->last_rx_ms ? now - session->last_rx_ms : 0;
  if (info->struct_size >= offsetof(duet_conn_info_t, client_close_code) + sizeof info->client_close_code)
    info->client_close_code = session->client_close_code;
}

/* Refuses a client's message: the error answer, its metric and the
 * "duet.rejected" event (the audit log records it). */
static void reject(duet_sessions_t *s, duet_conn_t *conn, const char *code, const char *message) {
  duet__conn_send_error(&s->conns, conn, code, message);
  duet__label_counts_add(&s->errors, code);
  char code_json[128], json[160];
  duet__json_escape(code_json, sizeof code_json, code);
  int n = snprintf(json, sizeof json, "{\"code\":%s}", code_json);
  duet_event_t event = {"duet.rejected", conn->id, json, (size_t)n};
  duet__plugins_emit(s->plugins, &event);
}

/* Token bucket: rate per second, bursts up to twice that. */
static bool take_token(duet_sessions_t *s, session_t *session) {
  double rate = (double)s->opt->max_messages_per_second;
  uint64_t now = uv_now(s->loop);
  session->tokens += (double)(now - session->tokens_at) * rate / 1000.0;
  if (session->tokens > 2 * rate)
    session->tokens = 2 * rate;
  session->tokens_at = now;
  if (session->tokens < 1.0)
    return false;
  session->tokens -= 1.0;
  return true;
}

static void rate_limited(duet_sessions_t *s, session_t *session) {
  duet_conn_t *conn = session->conn;
  /* One answer per second at most: a flood must not be echoed back. */
  uint64_t now = uv_now(s->loop);
  if (now - session->rate_error_at >= 1000 || session->rate_error_at == 0) {
    session->rate_error_at = now;
    char text[160];
    snprintf(text, sizeof text, "Too many messages: this server accepts %u per second per connection.",
             s->opt->max_messages_per_second);
    reject(s, conn, "rate-limited", text);
  }
}

static void dispatch(duet_sessions_t *s, session_t *session, const char *data, size_t len) {
  duet_conn_t *conn = session->conn;
  s->messages++;
  if (!take_token(s, session)) {
    rate_limited(s, session);
    return;
  }
  duet_msg_t msg;
  const char *why = NULL;
  if (duet__message_decode(data, len, &msg, &why) != 0) {
    char text[300];
    snprintf(text, sizeof text, "The message is not a valid JSON object: %s", why);
    reject(s, conn, "malformed", text);
    return;
  }
  duet_reject_t verdict = {NULL, NULL};
  if (duet__plugins_on_message(s->plugins, conn->id, &msg, &verdict) == DUET_REJECT)
    reject(s, conn, verdict.code, verdict.message);
  else
    duet__admission_ready(&s->admission, &session->admission);
}

static void on_receive(duet_sessions_t *s, struct lws *wsi, session_t *session, const char *in, size_t len) {
  duet_conn_t *conn = session->conn;
  size_t max = s->opt->max_message_bytes;
  const char *data = NULL;
  size_t data_len = 0;
  duet_rx_t rx = duet__reassembly_feed(&session->rx, in, len, lws_is_first_fragment(wsi), lws_is_final_fragment(wsi),
                                       lws_frame_is_binary(wsi), max, &data, &data_len);
  if (rx == DUET_RX_MORE)
    return;
  if (rx == DUET_RX_BINARY) {
    reject(s, conn, "binary-unsupported", "Binary frames are not supported: send each message as a text frame.");
  } else if (rx == DUET_RX_TOO_LARGE) {
    char text[160];
    snprintf(text, sizeof text, "The message is larger than this server's limit of %zu bytes.", max);
    reject(s, conn, "too-large", text);
  } else {
    dispatch(s, session, data, data_len);
  }
  duet__reassembly_trim(&session->rx);
}

static void tell_plugins_closed(duet_sessions_t *s, duet_conn_t *conn, duet_close_reason_t why) {
  session_t *session = session_of(conn);
  if (session->plugins_told)
    return;
  session->plugins_told = true;
  duet__plugins_on_close(s->plugins, conn->id, why);
}

static void on_closed(duet_sessions_t *s, session_t *session) {
  duet_conn_t *conn = session->conn;
  s->churn++;
  duet_close_reason_t why = conn->closing ? conn->close_why : DUET_CLOSE_CLIENT;
  s->closed[why]++;
  tell_plugins_closed(s, conn, why);
  duet__admission_release(&s->admission, &session->admission);
  char name[64];
  DUET_DEBUG("connection %s closed", duet__conn_name(conn, name));
  duet__reassembly_free(&session->rx);
  free(session->user_agent);
  session->user_agent = NULL;
  duet__conns_remove(&s->conns, conn);
  session->conn = NULL;
  if ((s->conns.draining || s->refusing) && s->conns.live == 0 && !s->tearing_down && s->on_drained)
    s->on_drained(s->data);
}

/* Plugins hear of a close as soon as it starts, on the next loop turn:
 * not inside the call that asked for it (a plugin may be mid-update), and
 * not after a close handshake that a dead peer never completes. */
static void tell_closing(uv_timer_t *timer) {
  duet_sessions_t *s = timer->data;
  for (size_t i = 0; i < s->closing_count; i++) {
    duet_conn_t *conn = duet__conns_get(&s->conns, s->closing_ids[i]);
    if (conn)
      tell_plugins_closed(s, conn, conn->close_why);
  }
  s->closing_count = 0;
}

static void on_closing(void *data, duet_conn_t *conn) {
  duet_sessions_t *s = data;
  if (session_of(conn)->plugins_told || s->tearing_down)
    return;
  if (s->closing_count == s->closing_cap) {
    size_t cap = s->closing_cap ? s->closing_cap * 2 : 64;
    uint64_t *ids = realloc(s->closing_ids, cap * sizeof *ids);
    if (!ids)
      return; /* on_closed tells the plugins later instead */
    s->closing_ids = ids;
    s->closing_cap = cap;
  }
  s->closing_ids[s->closing_count++] = conn->id;
  uv_timer_start(&s->closing_timer, tell_closing, 0, 0);
}

static void open_timed_out(void *data, duet_conn_t *conn) {
  duet_sessions_t *s = data;
  reject(s, conn, "open-timeout", "No message came in time after connecting; reconnect and send open.");
  duet__conn_close(conn, 4408, "open timeout", DUET_CLOSE_TIMEOUT);
}

static void describe_peer(duet_conn_t *conn, int fd) {
  struct sockaddr_storage sa;
  socklen_t sa_len = sizeof sa;
  snprintf(conn->addr, sizeof conn->addr, "?");
  if (getpeername(fd, (struct sockaddr *)&sa, &sa_len) != 0)
    return;
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

/* Records what plugins may ask about a connection (conn_info). */
static void describe_conn(duet_sessions_t *s, struct lws *wsi, session_t *session) {
  describe_peer(session->conn, lws_get_socket_fd(wsi));
  int ua_len = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_USER_AGENT);
  if (ua_len > 0) {
    size_t keep = ua_len > 255 ? 256 : (size_t)ua_len + 1;
    session->user_agent = malloc(keep);
    if (session->user_agent && lws_hdr_copy(wsi, session->user_agent, (int)keep, WSI_TOKEN_HTTP_USER_AGENT) < 0)
      session->user_agent[0] = '\0';
  }
  SSL *ssl = lws_get_ssl(wsi);
  session->tls_version = ssl ? SSL_get_version(ssl) : NULL;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  session->connected_unix_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
  session->last_rx_ms = session->tokens_at = uv_now(s->loop);
  session->tokens = 2.0 * s->opt->max_messages_per_second;
}

/* A new WebSocket: over a limit it is told and closed (plugins never see
 * it); otherwise plugins hear of it and it waits for its first message. */
static int on_established(duet_sessions_t *s, struct lws *wsi, session_t *session) {
  if (s->conns.draining || !session)
    return -1;
  duet_conn_t *conn = duet__conns_add(&s->conns, wsi);
  if (!conn) {
    DUET_ERROR("out of memory accepting a connection");
    return -1;
  }
  session->conn = conn;
  s->churn++;
  describe_conn(s, wsi, session);
  s->accepted++;
  char name[64], text[200];
  DUET_DEBUG("connection %s opened", duet__conn_name(conn, name));
  if (s->refusing) {
    /* 1012 (service restart): clients reconnect, and the balancer sends them elsewhere. */
    session->plugins_told = true; /* plugins never heard of it */
    reject(s, conn, "server-draining",
           "This server is draining for maintenance: connect again and you reach another one.");
    duet__conn_close(conn, 1012, "server draining", DUET_CLOSE_SERVER);
    return 0;
  }
  const char *refused =
      duet__admission_admit(&s->admission, s->conns.live, conn, &session->admission, text, sizeof text);
  if (!refused) {
    duet__plugins_on_open(s->plugins, conn->id);
    return 0;
  }
  session->plugins_told = true; /* plugins never heard of it */
  reject(s, conn, refused, text);
  duet__conn_close(conn, strcmp(refused, "server-full") == 0 ? 1013 : LWS_CLOSE_STATUS_POLICY_VIOLATION, refused,
                   DUET_CLOSE_LIMIT);
  return 0;
}

int duet__sessions_callback(duet_sessions_t *s, struct lws *wsi, int reason, void *user, void *in, size_t len) {
  session_t *session = user;
  duet_conn_t *conn = session ? session->conn : NULL;
  switch ((enum lws_callback_reasons)reason) {
  case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
    /* The admin and redirect sockets are plain HTTP for their one job: no signaling there. */
    if (lws_get_opaque_user_data(wsi))
      return 1;
    return duet__admission_upgrade_allowed(&s->admission, wsi) ? 0 : 1;
  case LWS_CALLBACK_ESTABLISHED:
    return on_established(s, wsi, session);
  case LWS_CALLBACK_RECEIVE:
    if (conn) {
      session->last_rx_ms = uv_now(s->loop);
      if (!conn->closing)
        on_receive(s, wsi, session, in, len);
    }
    return 0;
  case LWS_CALLBACK_RECEIVE_PONG:
    if (conn)
      session->last_rx_ms = uv_now(s->loop);
    return 0;
  case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    /* Plugins may tell a deliberate hang-up (1000, 1001) from a lost link. */
    if (conn && len >= 2)
      session->client_close_code = (uint16_t)(((const unsigned char *)in)[0] << 8 | ((const unsigned char *)in)[1]);
    /* The answer to our own close frame: end here rather than echo it. */
    return conn && conn->close_sent ? -1 : 0;
  case LWS_CALLBACK_SERVER_WRITEABLE:
    return conn ? duet__conn_on_writeable(conn) : 0;
  case LWS_CALLBACK_CLOSED:
    if (conn)
      on_closed(s, session);
    return 0;
  default:
    return 0;
  }
}

/* ---- the series the sessions own on /metrics ---- */

static const duet_sessions_t *sessions_of(const void *data) { return data; }
static void put_accepted(const void *data, duet_metrics_out_t *out) {
  duet__metrics_put(out, NULL, (int64_t)sessions_of(data)->accepted);
}
static void put_closed(const void *data, duet_metrics_out_t *out) {
  for (int why = 0; why <= DUET_CLOSE_TAKEOVER; why++)
    duet__metrics_put(out, duet_close_reason_name((duet_close_reason_t)why), (int64_t)sessions_of(data)->closed[why]);
}
static void put_messages(const void *data, duet_metrics_out_t *out) {
  duet__metrics_put(out, NULL, (int64_t)sessions_of(data)->messages);
}
static void put_errors(const void *data, duet_metrics_out_t *out) {
  duet__label_counts_put(&sessions_of(data)->errors, out);
}

static const duet_series_t session_series[] = {
    {"connections_accepted_total", "WebSocket connections accepted.", DUET_METRIC_COUNTER, NULL, put_accepted},
    {"connections_closed_total", "WebSocket connections closed, by reason.", DUET_METRIC_COUNTER, "reason", put_closed},
    {"messages_received_total", "Signaling messages received (whole text messages).", DUET_METRIC_COUNTER, NULL,
     put_messages},
    {"errors_total", "Error answers sent to clients, by code.", DUET_METRIC_COUNTER, "code", put_errors},
};

int duet__sessions_init(duet_sessions_t *s, uv_loop_t *loop, const duet_options_t *opt, duet_plugins_t *plugins,
                        duet_metrics_t *metrics, void (*on_drained)(void *data), void *data) {
  memset(s, 0, sizeof *s);
  s->opt = opt;
  s->loop = loop;
  s->plugins = plugins;
  s->on_drained = on_drained;
  s->data = data;
  int r = duet__conns_init(&s->conns, loop, duet__plugins_count(plugins), opt->max_queued_bytes,
                           opt->max_queued_bytes_total, metrics);
  s->conns.on_closing = on_closing;
  s->conns.on_closing_data = s;
  duet__admission_init(&s->admission, loop, opt, &s->errors, open_timed_out, s);
  uv_timer_init(loop, &s->closing_timer);
  s->closing_timer.data = s;
  s->started = true;
  if (r == 0)
    r = duet__metrics_add_series(metrics, session_series, sizeof session_series / sizeof session_series[0], s);
  return r;
}

size_t duet__sessions_close_all(duet_sessions_t *s) {
  s->conns.draining = true;
  for (size_t i = 0; i < s->conns.slot_count; i++) {
    duet_conn_t *conn = s->conns.slots[i];
    if (conn)
      tell_plugins_closed(s, conn, DUET_CLOSE_SHUTDOWN);
  }
  for (size_t i = 0; i < s->conns.slot_count; i++) {
    duet_conn_t *conn = s->conns.slots[i];
    if (conn)
      duet__conn_close(conn, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down", DUET_CLOSE_SHUTDOWN);
  }
  return s->conns.live;
}

size_t duet__sessions_drain(duet_sessions_t *s) {
  s->refusing = true;
  return s->conns.live;
}

size_t duet__sessions_take_churn(duet_sessions_t *s) {
  size_t churn = s->churn;
  s->churn = 0;
  return churn;
}

void duet__sessions_tear_down(duet_sessions_t *s) { s->tearing_down = true; }

void duet__sessions_close_handles(duet_sessions_t *s) {
  if (!s->started)
    return;
  duet__admission_close(&s->admission);
  duet__conns_close_handles(&s->conns);
  uv_close((uv_handle_t *)&s->closing_timer, NULL);
}

void duet__sessions_destroy(duet_sessions_t *s) {
  if (!s->started)
    return;
  s->started = false;
  duet__conns_destroy(&s->conns);
  duet__admission_destroy(&s->admission);
  free(s->closing_ids);
  s->closing_ids = NULL;
}
