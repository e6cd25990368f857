#include "conn.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "duet/plugin.h"
#include "log.h"
#include "message.h"

/* lws 4.1 keeps its close opcode (4) out of the public enum ("handled by
 * lws_close_reason()"), but lws_write() accepts it; see duet__conn_on_writeable. */
#define WRITE_CLOSE_FRAME ((enum lws_write_protocol)4)

/* A queued text frame, its WebSocket header already built in the headroom
 * so that frames can be sent back to back as they are. */
struct duet_frame {
  duet_frame_t *next;
  size_t len;          /* of the payload */
  unsigned char hlen;  /* header bytes just before the payload */
  unsigned char buf[]; /* LWS_PRE bytes of headroom, then the payload */
};

/* One WRITEABLE sends every queued frame that fits in one TLS record, in one
 * write: under load a partner's messages leave in one system call and one
 * poll cycle instead of one each. */
#define BATCH_BYTES 16384

/* RFC 6455 5.2: a server's frames are unmasked. Returns the header length. */
static unsigned char frame_header(unsigned char *payload, size_t len) {
  unsigned char *h;
  if (len < 126) {
    h = payload - 2;
    h[1] = (unsigned char)len;
  } else if (len <= 0xffff) {
    h = payload - 4;
    h[1] = 126;
    h[2] = (unsigned char)(len >> 8);
    h[3] = (unsigned char)len;
  } else {
    h = payload - 10;
    h[1] = 127;
    for (int i = 0; i < 8; i++)
      h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
  }
  h[0] = 0x81; /* FIN, text */
  return (unsigned char)(payload - h);
}

static unsigned char *frame_start(duet_frame_t *f) { return f->buf + LWS_PRE - f->hlen; }

/* An id is (generation << 32 | slot + 1): lookups are an array index, and a
 * slot's generation changes on reuse so an old id never names a new socket. */
static uint64_t make_id(uint32_t generation, size_t slot) {
  return ((uint64_t)generation << 32) | (uint64_t)(slot + 1);
}

const char *duet__conn_name(const duet_conn_t *conn, char buf[static 64]) {
  snprintf(buf, 64, "%s#%llu", conn->addr, (unsigned long long)(conn->id & 0xffffffffu));
  return buf;
}

static void flush_corked(uv_check_t *check);
static void wake_noop(uv_idle_t *idle) { (void)idle; }

/* ---- the series conn.c owns on /metrics ---- */

static const duet_conns_t *conns_of(const void *data) { return data; }
static void put_open(const void *data, duet_metrics_out_t *out) {
  duet__metrics_put(out, NULL, (int64_t)conns_of(data)->live);
}
static void put_queued(const void *data, duet_metrics_out_t *out) {
  duet__metrics_put(out, NULL, (int64_t)conns_of(data)->queued_bytes_total);
}
static void put_queued_peak(const void *data, duet_metrics_out_t *out) {
  duet__metrics_put(out, NULL, (int64_t)conns_of(data)->queued_bytes_peak);
}
static void put_queued_limit(const void *data, duet_metrics_out_t *out) {
  duet__metrics_put(out, NULL, (int64_t)conns_of(data)->max_queued_bytes_total);
}
static void put_budget_closes(const void *data, duet_metrics_out_t *out) {
  duet__metrics_put(out, NULL, (int64_t)conns_of(data)->budget_closes);
}

static const duet_series_t conn_series[] = {
    {"connections_open", "WebSocket connections open now.", DUET_METRIC_GAUGE, NULL, put_open},
    {"send_queue_bytes", "Bytes waiting in all send queues now.", DUET_METRIC_GAUGE, NULL, put_queued},
    {"send_queue_bytes_peak", "The most bytes waiting in all send queues at once since start.", DUET_METRIC_GAUGE, NULL,
     put_queued_peak},
    {"send_queue_bytes_limit", "--max-queued-bytes-total: the bound on all send queues.", DUET_METRIC_GAUGE, NULL,
     put_queued_limit},
    {"send_budget_closes_total",
     "Connections closed because all send queues together reached --max-queued-bytes-total.", DUET_METRIC_COUNTER, NULL,
     put_budget_closes},
};

int duet__conns_init(duet_conns_t *conns, uv_loop_t *loop, size_t plugin_count, size_t max_queued_bytes,
                     size_t max_queued_bytes_total, duet_metrics_t *metrics) {
  memset(conns, 0, sizeof *conns);
  conns->plugin_count = plugin_count;
  conns->max_queued_bytes = max_queued_bytes;
  conns->max_queued_bytes_total = max_queued_bytes_total;
  uv_check_init(loop, &conns->flush);
  conns->flush.data = conns;
  uv_idle_init(loop, &conns->wake);
  return metrics ? duet__metrics_add_series(metrics, conn_series, sizeof conn_series / sizeof conn_series[0], conns)
                 : 0;
}

void duet__conns_close_handles(duet_conns_t *conns) {
  uv_close((uv_handle_t *)&conns->flush, NULL);
  uv_close((uv_handle_t *)&conns->wake, NULL);
}

static void free_queue(duet_conn_t *conn) {
  duet_frame_t *f = conn->queue_head;
  while (f) {
    duet_frame_t *next = f->next;
    free(f);
    f = next;
  }
  conn->queue_head = conn->queue_tail = NULL;
  conn->conns->queued_bytes_total -= conn->queued_bytes;
  conn->queued_bytes = 0;
}

static void free_conn(duet_conn_t *conn) {
  free_queue(conn);
  free(conn->close_reason);
  free(conn);
}

void duet__conns_destroy(duet_conns_t *conns) {
  for (size_t i = 0; i < conns->slot_count; i++)
    if (conns->slots[i])
      free_conn(conns->slots[i]);
  free(conns->slots);
  free(conns->generations);
  free(conns->free_list);
  free(conns->corked_ids);
  memset(conns, 0, sizeof *conns);
}

static int grow(duet_conns_t *conns) {
  size_t n = conns->slot_count ? conns->slot_count * 2 : 64;
  duet_conn_t **slots = realloc(conns->slots, n * sizeof(duet_conn_t *));
  if (!slots)
    return DUET_ENOMEM;
  conns->slots = slots;
  uint32_t *gens = realloc(conns->generations, n * sizeof *gens);
  if (!gens)
    return DUET_ENOMEM;
  conns->generations = gens;
  uint32_t *free_list = realloc(conns->free_list, n * sizeof *free_list);
  if (!free_list)
    return DUET_ENOMEM;
  conns->free_list = free_list;
  /* New slots go on the free list highest first, so low slots are used first. */
  for (size_t i = n; i > conns->slot_count; i--) {
    slots[i - 1] = NULL;
    gens[i - 1] = 1;
    free_list[conns->free_count++] = (uint32_t)(i - 1);
  }
  conns->slot_count = n;
  return 0;
}

duet_conn_t *duet__conns_add(duet_conns_t *conns, struct lws *wsi) {
  if (conns->free_count == 0 && grow(conns) != 0)
    return NULL;
  duet_conn_t *conn = calloc(1, sizeof *conn + conns->plugin_count * sizeof conn->plugin_data[0]);
  if (!conn)
    return NULL;
  uint32_t slot = conns->free_list[--conns->free_count];
  conn->id = make_id(conns->generations[slot], slot);
  conn->wsi = wsi;
  conn->conns = conns;
  conns->slots[slot] = conn;
  conns->live++;
  return conn;
}

duet_conn_t *duet__conns_get(const duet_conns_t *conns, uint64_t id) {
  uint64_t slot = (id & 0xffffffffu);
  if (slot == 0 || slot > conns->slot_count)
    return NULL;
  duet_conn_t *conn = conns->slots[slot - 1];
  return conn && conn->id == id ? conn : NULL;
}

void duet__conns_remove(duet_conns_t *conns, duet_conn_t *conn) {
  size_t slot = (size_t)(conn->id & 0xffffffffu) - 1;
  conns->slots[slot] = NULL;
  conns->generations[slot]++;
  if (conns->generations[slot] == 0)
    conns->generations[slot] = 1;
  conns->free_list[conns->free_count++] = (uint32_t)slot;
  conns->live--;
  free_conn(conn);
}

/* The connection holding the most queued bytes, or NULL when none holds any. */
static duet_conn_t *heaviest(const duet_conns_t *conns) {
  duet_conn_t *most = NULL;
  for (size_t i = 0; i < conns->slot_count; i++) {
    duet_conn_t *c = conns->slots[i];
    if (c && c->queued_bytes && (!most || c->queued_bytes > most->queued_bytes))
      most = c;
  }
  return most;
}

/* Slow readers together may hold at most max_queued_bytes_total: the ones
 * holding the most are dropped until len more fits for target (or target
 * itself was the one dropped). A scan of every
 * connection, but only when the budget is hit, and each drop frees the
 * largest queue. */
static void make_room(duet_conns_t *conns, duet_conn_t *target, size_t len) {
  while (conns->queued_bytes_total + len > conns->max_queued_bytes_total && !target->closing) {
    duet_conn_t *victim = heaviest(conns);
    if (!victim)
      return;
    if (victim->closing) {
      free_queue(victim); /* already on its way out: only its backlog goes */
      continue;
    }
    char name[64];
    DUET_WARN_LIMITED("send budget full",
                      "the clients that do not read hold %zu bytes, the limit for all (--max-queued-bytes-total); "
                      "closing %s, which holds the most (%zu bytes)",
                      conns->queued_bytes_total, duet__conn_name(victim, name), victim->queued_bytes);
    conns->budget_closes++;
    free_queue(victim);
    duet__conn_close(victim, LWS_CLOSE_STATUS_POLICY_VIOLATION, "server send budget full", DUET_CLOSE_LIMIT);
  }
}

/* Marks conn to be written at the end of this loop turn. Asking lws for
 * WRITEABLE instead would cost an epoll_ctl pair (libuv 1.44 removes and
 * re-adds the fd) and a second loop turn before the write. */
static int cork(duet_conns_t *conns, duet_conn_t *conn) {
  if (conn->corked)
    return 0;
  if (uv_is_closing((uv_handle_t *)&conns->flush))
    return DUET_ENOCONN; /* teardown: lws writes what is left, if anything */
  if (conns->corked_count == conns->corked_cap) {
    size_t cap = conns->corked_cap ? conns->corked_cap * 2 : 64;
    uint64_t *ids = realloc(conns->corked_ids, cap * sizeof *ids);
    if (!ids)
      return DUET_ENOMEM;
    conns->corked_ids = ids;
    conns->corked_cap = cap;
  }
  if (conns->corked_count == 0) {
    uv_check_start(&conns->flush, flush_corked);
    uv_idle_start(&conns->wake, wake_noop);
  }
  conns->corked_ids[conns->corked_count++] = conn->id;
  conn->corked = true;
  return 0;
}

int duet__conn_send(duet_conns_t *conns, duet_conn_t *conn, const char *data, size_t len) {
  if (conn->closing)
    return DUET_ENOCONN;
  if (conn->queued_bytes + len > conns->max_queued_bytes) {
    char name[64];
    DUET_WARN_LIMITED("send queue full", "connection %s: more than %zu bytes queued to a slow client, closing it",
                      duet__conn_name(conn, name), conns->max_queued_bytes);
    /* Waiting for the backlog to drain would let the client hold the memory. */
    free_queue(conn);
    duet__conn_close(conn, LWS_CLOSE_STATUS_POLICY_VIOLATION, "send queue full", DUET_CLOSE_LIMIT);
    return DUET_ENOBUFS;
  }
  if (conns->queued_bytes_total + len > conns->max_queued_bytes_total) {
    make_room(conns, conn, len);
    if (conn->closing || conns->queued_bytes_total + len > conns->max_queued_bytes_total)
      return DUET_ENOBUFS;
  }
  duet_frame_t *f = malloc(sizeof *f + LWS_PRE + len);
  if (!f)
    return DUET_ENOMEM;
  f->next = NULL;
  f->len = len;
  memcpy(f->buf + LWS_PRE, data, len);
  f->hlen = frame_header(f->buf + LWS_PRE, len);
  bool was_empty = conn->queue_head == NULL;
  if (conn->queue_tail)
    conn->queue_tail->next = f;
  else
    conn->queue_head = f;
  conn->queue_tail = f;
  conn->queued_bytes += len;
  conns->queued_bytes_total += len;
  if (conns->queued_bytes_total > conns->queued_bytes_peak)
    conns->queued_bytes_peak = conns->queued_bytes_total;
  /* A queue that was not empty is waiting already: for the flush, or for
   * WRITEABLE behind a partial write. */
  if (was_empty && cork(conns, conn) != 0)
    lws_callback_on_writable(conn->wsi);
  return 0;
}

int duet__conn_send_error(duet_conns_t *conns, duet_conn_t *conn, const char *code, const char *message) {
  char frame[DUET_ERROR_FRAME_MAX];
  size_t n = duet__error_frame(frame, code, message);
  char name[64];
  DUET_DEBUG("connection %s: error %s: %s", duet__conn_name(conn, name), code, message);
  return duet__conn_send(conns, conn, frame, n);
}

void duet__conn_close(duet_conn_t *conn, int code, const char *reason, duet_close_reason_t why) {
  if (conn->closing)
    return;
  conn->closing = true;
  conn->close_why = why;
  if (conn->conns->on_closing)
    conn->conns->on_closing(conn->conns->on_closing_data, conn);
  conn->close_code = code;
  /* RFC 6455 5.5: a close frame's reason fits in 123 bytes. */
  conn->close_reason = reason && *reason ? strndup(reason, 123) : NULL;
  /* A client that reads nothing may never let the rest out: give up after a
   * while (the close frame, once sent, gets its own 3 s for the answer). */
  lws_set_timeout(conn->wsi, PENDING_TIMEOUT_CLOSE_SEND, 10);
  lws_callback_on_writable(conn->wsi);
}

void duet__conn_ping(duet_conn_t *conn) {
  conn->ping_pending = true;
  lws_callback_on_writable(conn->wsi);
}

static void pop_frame(duet_conn_t *conn) {
  duet_frame_t *f = conn->queue_head;
  conn->queue_head = f->next;
  if (!conn->queue_head)
    conn->queue_tail = NULL;
  conn->queued_bytes -= f->len;
  conn->conns->queued_bytes_total -= f->len;
  free(f);
}

/* Sends the frames at the head of the queue that fit in BATCH_BYTES (at
 * least one) as one raw write. lws keeps what the socket did not take and
 * sends it before our next WRITEABLE, so the frames can be freed at once. */
static int write_batch(duet_conn_t *conn) {
  unsigned char batch[LWS_PRE + BATCH_BYTES];
  duet_frame_t *f = conn->queue_head;
  size_t first = f->hlen + f->len;
  if (!f->next || first + f->next->hlen + f->next->len > BATCH_BYTES) {
    int n = lws_write(conn->wsi, frame_start(f), first, LWS_WRITE_RAW);
    if (n < (int)first)
      return -1;
    pop_frame(conn);
    return 0;
  }
  size_t used = 0;
  while (conn->queue_head) {
    f = conn->queue_head;
    size_t size = f->hlen + f->len;
    if (used + size > BATCH_BYTES)
      break;
    memcpy(batch + LWS_PRE + used, frame_start(f), size);
    used += size;
    pop_frame(conn);
  }
  int n = lws_write(conn->wsi, batch + LWS_PRE, used, LWS_WRITE_RAW);
  return n < (int)used ? -1 : 0;
}

int duet__conn_on_writeable(duet_conn_t *conn) {
  if (conn->ping_pending && !conn->closing) {
    /* lws 4.1 drops an empty pong without telling us: ping with one byte. */
    unsigned char ping[LWS_PRE + 1];
    ping[LWS_PRE] = 'k';
    conn->ping_pending = false;
    if (lws_write(conn->wsi, ping + LWS_PRE, 1, LWS_WRITE_PING) < 0)
      return -1;
    if (conn->queue_head)
      lws_callback_on_writable(conn->wsi);
    return 0;
  }
  if (conn->queue_head) {
    if (write_batch(conn) < 0) {
      char name[64];
      DUET_INFO_LIMITED("write failed", "connection %s: write failed, closing", duet__conn_name(conn, name));
      return -1;
    }
    if (conn->queue_head || conn->closing)
      lws_callback_on_writable(conn->wsi);
    return 0;
  }
  if (conn->closing && !conn->close_sent) {
    /* lws 4.1 drops the socket without a close frame when a WRITEABLE
     * callback returns -1, so we send the frame ourselves and wait (bounded)
     * for the client's answer; see LWS_CALLBACK_WS_PEER_INITIATED_CLOSE. */
    unsigned char frame[LWS_PRE + 2 + 123];
    size_t reason_len = conn->close_reason ? strlen(conn->close_reason) : 0;
    frame[LWS_PRE] = (unsigned char)(conn->close_code >> 8);
    frame[LWS_PRE + 1] = (unsigned char)(conn->close_code & 0xff);
    if (reason_len)
      memcpy(frame + LWS_PRE + 2, conn->close_reason, reason_len);
    conn->close_sent = true;
    if (lws_write(conn->wsi, frame + LWS_PRE, 2 + reason_len, WRITE_CLOSE_FRAME) < 0)
      return -1;
    lws_set_timeout(conn->wsi, PENDING_TIMEOUT_CLOSE_ACK, 3);
  }
  return 0;
}

/* Outside any lws callback a write error cannot be returned to lws: ask it
 * to close the connection on its own, soon. */
static void drop_broken(duet_conn_t *conn) {
  char name[64];
  DUET_INFO_LIMITED("write failed", "connection %s: write failed, closing", duet__conn_name(conn, name));
  free_queue(conn);
  /* No more sends, and plugins hear of it now; the socket's error (POLLHUP)
   * makes lws close it. */
  duet__conn_close(conn, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, NULL, DUET_CLOSE_CLIENT);
  lws_set_timeout(conn->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
}

/* Writes a corked connection's queue now, batch after batch, until it is
 * empty or lws holds part of a write (then WRITEABLE takes over, in order:
 * lws sends what it holds first). A closing connection drains in WRITEABLE,
 * which ends with the close frame. */
static void flush_one(duet_conn_t *conn) {
  conn->corked = false;
  if (!conn->queue_head)
    return;
  if (conn->closing || lws_partial_buffered(conn->wsi)) {
    lws_callback_on_writable(conn->wsi);
    return;
  }
  while (conn->queue_head) {
    if (write_batch(conn) < 0) {
      drop_broken(conn);
      return;
    }
    if (conn->queue_head && lws_partial_buffered(conn->wsi)) {
      lws_callback_on_writable(conn->wsi);
      return;
    }
  }
}

static void flush_corked(uv_check_t *check) {
  duet_conns_t *conns = check->data;
  /* Flushing sends no new frames, so the list cannot grow meanwhile. */
  for (size_t i = 0; i < conns->corked_count; i++) {
    duet_conn_t *conn = duet__conns_get(conns, conns->corked_ids[i]);
    if (conn)
      flush_one(conn);
  }
  conns->corked_count = 0;
  uv_check_stop(check);
  uv_idle_stop(&conns->wake);
}
