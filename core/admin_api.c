/* The admin API (admin_api.h): the token check, the connection listing
 * with what plugins add to it, closing a connection, and drain. */
#include "admin_api.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "conn.h"
#include "host_table.h"
#include "log.h"
#include "message.h"
#include "metrics.h"
#include "plugins.h"
#include "session.h"

#define MAX_REASON_BYTES 200
#define CLOSED_BY_ADMIN_CODE 4403 /* the web client does not reconnect on it */

/* What plugins said of the connections and calls while a listing ran. */
typedef struct said {
  uint64_t conn; /* 0: a call */
  char plugin[64];
  char *json;
} said_t;

typedef struct collected {
  said_t *list;
  size_t count, cap;
  int failed; /* out of memory: the listing says so */
} collected_t;

static void collect(void *data, const char *plugin, const duet_event_t *event) {
  collected_t *c = data;
  int is_conn = strcmp(event->name, "admin.connection") == 0;
  if ((!is_conn && strcmp(event->name, "admin.call") != 0) || !event->json || !event->json_len)
    return;
  /* Plugins are ours, but one bad object must not spoil the whole answer. */
  duet_msg_t msg;
  const char *why;
  if (duet__message_decode(event->json, event->json_len, &msg, &why) != 0)
    return;
  if (c->count == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 64;
    said_t *list = realloc(c->list, cap * sizeof *list);
    if (!list) {
      c->failed = 1;
      return;
    }
    c->list = list;
    c->cap = cap;
  }
  said_t *s = &c->list[c->count];
  s->json = malloc(event->json_len + 1);
  if (!s->json) {
    c->failed = 1;
    return;
  }
  memcpy(s->json, event->json, event->json_len);
  s->json[event->json_len] = '\0';
  s->conn = is_conn ? event->conn : 0;
  snprintf(s->plugin, sizeof s->plugin, "%s", plugin ? plugin : "plugin");
  c->count++;
}

static int by_conn(const void *a, const void *b) {
  uint64_t x = ((const said_t *)a)->conn, y = ((const said_t *)b)->conn;
  return x < y ? -1 : x > y;
}

/* The first of what plugins said of conn, in the list sorted by conn. */
static const said_t *first_said(const collected_t *c, uint64_t conn) {
  size_t lo = 0, hi = c->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (c->list[mid].conn < conn)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < c->count && c->list[lo].conn == conn ? &c->list[lo] : NULL;
}

static void free_collected(collected_t *c) {
  for (size_t i = 0; i < c->count; i++)
    free(c->list[i].json);
  free(c->list);
}

static void put_string(FILE *out, const char *key, const char *value) {
  char escaped[1024];
  duet__json_escape(escaped, sizeof escaped, value);
  fprintf(out, ",\"%s\":%s", key, escaped);
}

static void put_rfc3339(FILE *out, const char *key, uint64_t unix_ms) {
  time_t seconds = (time_t)(unix_ms / 1000);
  struct tm tm;
  gmtime_r(&seconds, &tm);
  char text[40];
  strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  fprintf(out, ",\"%s\":\"%s.%03dZ\"", key, text, (int)(unix_ms % 1000));
}

static void list_connections(duet_admin_api_t *api, FILE *out) {
  collected_t said = {0};
  api->host->collect = collect;
  api->host->collect_data = &said;
  duet_event_t ask = {"duet.admin.list", 0, NULL, 0};
  duet__plugins_emit(api->plugins, &ask);
  api->host->collect = NULL;
  api->host->collect_data = NULL;
  if (said.count) /* by conn, calls (conn 0) first: a binary search per connection */
    qsort(said.list, said.count, sizeof *said.list, by_conn);

  char node[300];
  duet__json_escape(node, sizeof node, api->node_id);
  fprintf(out, "{\"node\":%s,\"connections\":[", node);
  uint64_t now = api->now_ms(api->data);
  int first = 1;
  for (size_t i = 0; i < api->conns->slot_count; i++) {
    const duet_conn_t *conn = api->conns->slots[i];
    if (!conn || conn->closing || duet__session_plugins_told(conn))
      continue;
    duet_conn_info_t info = {.struct_size = sizeof info};
    duet__session_describe(conn, now, &info);
    fprintf(out, "%s{\"id\":%" PRIu64, first ? "" : ",", conn->id);
    first = 0;
    put_rfc3339(out, "since", info.connected_unix_ms);
    put_string(out, "address", info.remote_addr);
    fprintf(out, ",\"port\":%u", (unsigned)info.remote_port);
    put_string(out, "user_agent", info.user_agent);
    fprintf(out, ",\"idle_ms\":%" PRIu64, info.idle_ms);
    const said_t *end = said.list + said.count;
    for (const said_t *k = first_said(&said, conn->id); k && k < end && k->conn == conn->id; k++)
      fprintf(out, ",\"%s\":%s", k->plugin, k->json);
    fputc('}', out);
  }
  fputs("],\"calls\":[", out);
  first = 1;
  for (size_t k = 0; k < said.count; k++)
    if (said.list[k].conn == 0) {
      fprintf(out, "%s%s", first ? "" : ",", said.list[k].json);
      first = 0;
    }
  fputs("]", out);
  if (said.failed)
    fputs(",\"incomplete\":\"out of memory while plugins answered\"", out);
  fputs("}\n", out);
  free_collected(&said);
}

/* "Bearer TOKEN", compared in constant time. */
static int authorized(const duet_admin_api_t *api, const char *authorization) {
  static const char scheme[] = "Bearer ";
  if (!authorization || strncmp(authorization, scheme, sizeof scheme - 1) != 0)
    return 0;
  const char *given = authorization + sizeof scheme - 1;
  return strlen(given) == api->token_len && CRYPTO_memcmp(given, api->token, api->token_len) == 0;
}

/* ID of "/admin/connections/ID/close", or 0. */
static uint64_t close_target(const char *path) {
  static const char prefix[] = "/admin/connections/";
  if (strncmp(path, prefix, sizeof prefix - 1) != 0)
    return 0;
  const char *digits = path + sizeof prefix - 1;
  char *end = NULL;
  if (*digits < '1' || *digits > '9')
    return 0;
  unsigned long long id = strtoull(digits, &end, 10);
  return end && strcmp(end, "/close") == 0 ? (uint64_t)id : 0;
}

static int close_connection(duet_admin_api_t *api, uint64_t id, const char *reason, FILE *out) {
  duet_conn_t *conn = duet__conns_get(api->conns, id);
  if (!conn || conn->closing || duet__session_plugins_told(conn)) {
    fprintf(out, "{\"error\":\"no-such-connection\",\"id\":%" PRIu64 "}\n", id);
    return 404;
  }
  char text[MAX_REASON_BYTES + 1];
  snprintf(text, sizeof text, "%s", reason && *reason ? reason : "The operator closed this connection.");
  duet__conn_send_error(api->conns, conn, "closed-by-admin", text);
  duet__conn_close(conn, CLOSED_BY_ADMIN_CODE, "closed by the operator", DUET_CLOSE_SERVER);
  char escaped[MAX_REASON_BYTES * 6 + 3];
  duet__json_escape(escaped, sizeof escaped, text);
  DUET_INFO("admin API: closed connection %" PRIu64 ": %s", id, escaped);
  fprintf(out, "{\"closed\":%" PRIu64 ",\"reason\":%s}\n", id, escaped);
  api->closed++;
  return 200;
}

int duet__admin_api_answer(duet_admin_api_t *api, const duet_admin_request_t *req, duet_admin_answer_t *answer) {
  if (strncmp(req->path, "/admin/", 7) != 0 && strcmp(req->path, "/admin") != 0)
    return 0;
  char *body = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&body, &len);
  if (!out)
    return DUET_ENOMEM;
  unsigned status;
  answer->authenticate = 0;
  uint64_t id;
  if (!api->token) {
    fputs("{\"error\":\"not-found\",\"message\":\"the admin API is off: start duetd with --admin-token-file\"}\n", out);
    status = 404;
  } else if (!authorized(api, req->authorization)) {
    fputs("{\"error\":\"unauthorized\",\"message\":\"send Authorization: Bearer TOKEN (--admin-token-file)\"}\n", out);
    status = 401;
    answer->authenticate = 1;
    api->refused++;
    char path[300]; /* escaped: a decoded %0a must not start a log line of its own */
    duet__json_escape(path, sizeof path, req->path);
    DUET_WARN_LIMITED("admin API refusals", "admin API: refused a request for %s without the right token", path);
  } else if (strcmp(req->path, "/admin/connections") == 0) {
    if (req->post) {
      fputs("{\"error\":\"method-not-allowed\",\"message\":\"GET /admin/connections\"}\n", out);
      status = 405;
    } else {
      list_connections(api, out);
      api->listed++;
      status = 200;
    }
  } else if ((id = close_target(req->path)) != 0) {
    if (!req->post) {
      fputs("{\"error\":\"method-not-allowed\",\"message\":\"POST /admin/connections/ID/close\"}\n", out);
      status = 405;
    } else if (req->too_long || (req->reason && strlen(req->reason) > MAX_REASON_BYTES)) {
      fprintf(out, "{\"error\":\"bad-request\",\"message\":\"a reason is at most %d bytes\"}\n", MAX_REASON_BYTES);
      status = 400;
    } else {
      status = (unsigned)close_connection(api, id, req->reason, out);
    }
  } else if (strcmp(req->path, "/admin/drain") == 0) {
    if (!req->post) {
      fputs("{\"error\":\"method-not-allowed\",\"message\":\"POST /admin/drain\"}\n", out);
      status = 405;
    } else {
      size_t left = api->conns->live;
      DUET_INFO("admin API: drain asked for");
      api->drain(api->data);
      api->drains++;
      fprintf(out, "{\"draining\":true,\"connections\":%zu}\n", left);
      status = 202;
    }
  } else {
    fputs("{\"error\":\"not-found\",\"message\":\"GET /admin/connections, POST /admin/connections/ID/close, "
          "POST /admin/drain\"}\n",
          out);
    status = 404;
  }
  if (fclose(out) != 0) {
    free(body);
    return DUET_ENOMEM;
  }
  answer->status = status;
  answer->content_type = "application/json";
  answer->body = body;
  answer->len = len;
  return 1;
}

static const duet_admin_api_t *api_of(const void *data) { return data; }
static void put_requests(const void *data, duet_metrics_out_t *out) {
  duet__metrics_put(out, "list", (int64_t)api_of(data)->listed);
  duet__metrics_put(out, "close", (int64_t)api_of(data)->closed);
  duet__metrics_put(out, "drain", (int64_t)api_of(data)->drains);
}
static void put_refused(const void *data, duet_metrics_out_t *out) {
  duet__metrics_put(out, NULL, (int64_t)api_of(data)->refused);
}

static const duet_series_t admin_series[] = {
    {"admin_actions_total", "Admin API requests carried out, by action.", DUET_METRIC_COUNTER, "action", put_requests},
    {"admin_refused_total", "Admin API requests refused: no token or a wrong one.", DUET_METRIC_COUNTER, NULL,
     put_refused},
};

int duet__admin_api_add_metrics(duet_admin_api_t *api, struct duet_metrics *metrics) {
  return duet__metrics_add_series(metrics, admin_series, sizeof admin_series / sizeof admin_series[0], api);
}
