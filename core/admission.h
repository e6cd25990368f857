/* Who may become a signaling connection, and for how long it may wait:
 * the upgrade check (RFC 6455 request, page origin), the connection limits
 * (in all and per address), and the open timeout for a WebSocket that
 * sends no accepted message. */
#ifndef DUET_ADMISSION_H
#define DUET_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "conn.h"
#include "ip_table.h"
#include "metrics.h"
#include "options.h"

struct lws;

/* What admission keeps of one connection: its place among those waiting
 * for their first accepted message, its open-timeout clock and its
 * address's count. It lives in the session's per-connection state. */
typedef struct duet_admission_slot {
  struct duet_admission_slot *prev, *next;
  duet_conn_t *conn;
  uint64_t opened_ms; /* loop time it was admitted: the open-timeout clock */
  struct duet_ip_entry *ip;
  bool ready; /* its first message was accepted (or it was refused): it waits no more */
} duet_admission_slot_t;

typedef struct duet_admission {
  const duet_options_t *opt;
  uv_loop_t *loop;
  duet_label_counts_t *errors;         /* where refusals are counted by code (the session's) */
  duet_ip_table_t ips;                 /* WebSocket connections per client address */
  duet_admission_slot_t *waiting_head; /* connections yet to send an accepted message, oldest first */
  duet_admission_slot_t *waiting_tail;
  uv_timer_t open_timer;
  /* Called for each connection whose open timeout ran out; it must close it. */
  void (*on_timeout)(void *data, duet_conn_t *conn);
  void *data;
} duet_admission_t;

/* Starts the open-timeout timer on loop. Refused origins are counted in
 * errors ("origin-refused"). */
void duet__admission_init(duet_admission_t *a, uv_loop_t *loop, const duet_options_t *opt, duet_label_counts_t *errors,
                          void (*on_timeout)(void *data, duet_conn_t *conn), void *data);
/* Closes the timer handle (the loop must run once more). */
void duet__admission_close(duet_admission_t *a);
void duet__admission_destroy(duet_admission_t *a);

/* Whether this HTTP upgrade may become a signaling WebSocket: a GET with
 * WebSocket version 13, from no page or a page of an allowed origin. */
bool duet__admission_upgrade_allowed(duet_admission_t *a, struct lws *wsi);
/* Applies the limits to a new WebSocket conn, live being the number open
 * with it; slot (zeroed) is its admission state from now until release.
 * Returns NULL when it is admitted (it then waits for its first message),
 * else the error code, with a sentence for the client in text. */
const char *duet__admission_admit(duet_admission_t *a, size_t live, duet_conn_t *conn, duet_admission_slot_t *slot,
                                  char *text, size_t text_len);
/* The connection's first message was accepted: it waits no more. */
void duet__admission_ready(duet_admission_t *a, duet_admission_slot_t *slot);
/* The connection closed: it no longer counts or waits. */
void duet__admission_release(duet_admission_t *a, duet_admission_slot_t *slot);

#endif
