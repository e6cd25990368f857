/* The server's own series on /metrics: what protects it from floods (its
 * listeners' counters, the open-files limit, the log limit) and the process
 * (memory, uptime). */
#ifndef DUET_PROCESS_METRICS_H
#define DUET_PROCESS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "listener.h"
#include "metrics.h"

typedef struct duet_process_metrics {
  const duet_listener_t *listeners[3]; /* public, admin, redirect */
  uv_loop_t *loop;
  uint64_t started_ms;
  size_t open_files_limit;
} duet_process_metrics_t;

/* Registers the series; p is read at each scrape, so it outlives metrics. */
int duet__process_metrics_add(duet_metrics_t *metrics, const duet_process_metrics_t *p);

#endif
