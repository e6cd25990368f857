/* Signaling sessions: a WebSocket's life from upgrade to close. Each text
 * message is reassembled, rate-limited, decoded once and offered to the
 * plugin chain; refusals are answered; plugins hear of opens and closes. */
#ifndef DUET_SESSION_H
#define DUET_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "admission.h"
#include "conn.h"
#include "metrics.h"
#include "options.h"
#include "plugins.h"

struct lws;

typedef struct duet_sessions {
  const duet_options_t *opt;
  uv_loop_t *loop;
  duet_conns_t conns;
  duet_plugins_t *plugins;
  duet_admission_t admission;
  /* Counted for /metrics (the series this unit registers). */
  uint64_t accepted;
  uint64_t messages;
  uint64_t closed[DUET_CLOSE_TAKEOVER + 1]; /* by reason */
  duet_label_counts_t errors;               /* error answers by code */
  uv_timer_t closing_timer;                 /* tells plugins of closes started this turn */
  uint64_t *closing_ids;
  size_t closing_count, closing_cap;
  size_t churn; /* connections opened or closed since duet__sessions_take_churn */
  bool started;
  bool tearing_down; /* the main loop run is over: lws closes what is left */
  bool refusing;     /* draining: each new connection is told server-draining and closed */
  /* Called when the last connection has closed during duet__sessions_close_all
   * or duet__sessions_drain. */
  void (*on_drained)(void *data);
  void *data;
} duet_sessions_t;

/* Sets up the connection table and the timers on loop; plugins are loaded.
 * Registers the sessions' series and the connection table's in metrics.
 * Returns 0 or a DUET_E* code. */
int duet__sessions_init(duet_sessions_t *s, uv_loop_t *loop, const duet_options_t *opt, duet_plugins_t *plugins,
                        duet_metrics_t *metrics, void (*on_drained)(void *data), void *data);
/* The lws callback of the "duet" protocol, with s as its context. */
int duet__sessions_callback(duet_sessions_t *s, struct lws *wsi, int reason, void *user, void *in, size_t len);
/* Bytes lws keeps per signaling connection for us. */
size_t duet__sessions_session_size(void);
/* Shutdown: tells every plugin of every close first (while partners can
 * still be sent to), then closes each connection with 1001. Returns how
 * many were open; on_drained follows when the last one has closed. */
size_t duet__sessions_close_all(duet_sessions_t *s);
/* Drain: from now on each new connection is told server-draining and
 * closed with 1012; the open ones stay. Returns how many are open;
 * on_drained follows when the last one has closed. */
size_t duet__sessions_drain(duet_sessions_t *s);
/* Connections opened or closed since the last call (for malloc_trim). */
size_t duet__sessions_take_churn(duet_sessions_t *s);
/* After the main loop: lws closes the rest without telling on_drained. */
void duet__sessions_tear_down(duet_sessions_t *s);
/* Closes the timer handles (the loop must run once more), then frees all. */
void duet__sessions_close_handles(duet_sessions_t *s);
void duet__sessions_destroy(duet_sessions_t *s);

/* For the host table, of a live connection: whether plugins were told it
 * closed (sends to it then fail), and what conn_info reports. */
bool duet__session_plugins_told(const duet_conn_t *conn);
void duet__session_describe(const duet_conn_t *conn, uint64_t now, duet_conn_info_t *info);

#endif
