/* WebSocket connections: the table that maps opaque ids to live sockets, and
 * each connection's bounded send queue. */
#ifndef DUET_CONN_H
#define DUET_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "duet/plugin.h"
#include "metrics.h"

struct lws;
typedef struct duet_frame duet_frame_t;

struct duet_conns;

/* A connection as conn.c manages it: its id and socket, its name in logs,
 * its send queue and its close. What the session, admission and the
 * plugins keep per connection lives with them (session.c's session_t). */
typedef struct duet_conn {
  uint64_t id;
  struct duet_conns *conns;
  struct lws *wsi;

  duet_frame_t *queue_head;
  duet_frame_t *queue_tail;
  size_t queued_bytes;

  char *close_reason; /* NULL for none */
  int close_code;
  duet_close_reason_t close_why;
  uint16_t port;
  uint16_t client_close_code; /* from the client's close frame, 0 if none */
  bool ping_pending;
  bool closing;    /* no more sends: close once the queue is drained */
  bool close_sent; /* our close frame is out: waiting for the client's */
  bool corked;     /* has frames to write when this loop turn's I/O is done */
  char addr[46];   /* numeric remote address, for its name in logs */

  void *plugin_data[]; /* one slot per loaded plugin */
} duet_conn_t;

typedef struct duet_conns {
  duet_conn_t **slots;
  uint32_t *generations;
  uint32_t *free_list;
  size_t free_count;
  size_t slot_count;
  size_t live;
  bool draining; /* shutting down: plugins may still send to connections they were told closed */
  size_t plugin_count;
  size_t max_queued_bytes;       /* per connection */
  size_t max_queued_bytes_total; /* all connections together */
  size_t queued_bytes_total;
  size_t queued_bytes_peak; /* the most queued at once since start */
  uint64_t budget_closes;   /* connections dropped for the total */
  /* Frames queued during one loop turn are written when its I/O callbacks
   * are done (a check handle): at once, and batched per connection. */
  uv_check_t flush;
  uv_idle_t wake; /* keeps the loop's poll from blocking while frames are corked */
  uint64_t *corked_ids;
  size_t corked_count, corked_cap;
  /* Called when a close starts, so plugins can hear of it at once rather
   * than after the close handshake (which a dead peer never answers). */
  void (*on_closing)(void *data, duet_conn_t *conn);
  void *on_closing_data;
} duet_conns_t;

/* Sets up the table on loop; registers its series (connections open, the
 * send queues) in metrics unless NULL. Returns 0 or a DUET_E* code. */
int duet__conns_init(duet_conns_t *conns, uv_loop_t *loop, size_t plugin_count, size_t max_queued_bytes,
                     size_t max_queued_bytes_total, duet_metrics_t *metrics);
/* Closes the flush handle (the loop must run once more before destroy). */
void duet__conns_close_handles(duet_conns_t *conns);
void duet__conns_destroy(duet_conns_t *conns);

/* "address#slot", the connection's name in logs. (C++, in the unit tests,
 * has no [static 64].) */
#ifdef __cplusplus
const char *duet__conn_name(const duet_conn_t *conn, char buf[64]);
#else
const char *duet__conn_name(const duet_conn_t *conn, char buf[static 64]);
#endif

/* Registers a new connection for wsi; NULL when out of memory. */
duet_conn_t *duet__conns_add(duet_conns_t *conns, struct lws *wsi);
/* The live connection with this id, or NULL. O(1). */
duet_conn_t *duet__conns_get(const duet_conns_t *conns, uint64_t id);
/* Frees conn and retires its id. */
void duet__conns_remove(duet_conns_t *conns, duet_conn_t *conn);

/* Queues a copy of one text frame, written when the current loop turn's
 * I/O is done (or, behind a partial write, when the socket takes more).
 * Frames leave in the order they were queued. Returns 0, DUET_ENOCONN when closing,
 * DUET_ENOBUFS when the queue would exceed its bound (the connection is
 * then closed with 1008; when all queues together would exceed theirs, the
 * connections holding the most are closed first), DUET_ENOMEM. */
int duet__conn_send(duet_conns_t *conns, duet_conn_t *conn, const char *data, size_t len);
/* Queues {"error":{"code":...,"message":...}} (duet__error_frame) to conn;
 * returns as duet__conn_send. */
int duet__conn_send_error(duet_conns_t *conns, duet_conn_t *conn, const char *code, const char *message);
/* Starts a graceful close: queued frames go out, then a close frame. why
 * is what plugins hear in on_close. */
void duet__conn_close(duet_conn_t *conn, int code, const char *reason, duet_close_reason_t why);
/* Queues a WebSocket ping frame. */
void duet__conn_ping(duet_conn_t *conn);
/* The pointer plugin number index keeps for conn (host conn_set_data). */
static inline void *duet__conn_plugin_data(const duet_conn_t *conn, size_t index) { return conn->plugin_data[index]; }
static inline void duet__conn_set_plugin_data(duet_conn_t *conn, size_t index, void *data) {
  conn->plugin_data[index] = data;
}
/* Writes what lws lets us write now: pings, queued frames behind a partial
 * write, the close frame. Returns -1 when the connection must be closed
 * (lws then closes it), else 0. Call from SERVER_WRITEABLE only. */
int duet__conn_on_writeable(duet_conn_t *conn);

#endif
