/* Counters and gauges for GET /metrics (Prometheus text format): the core's
 * own, with bounded label sets, and those plugins register. */
#ifndef DUET_METRICS_H
#define DUET_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "duet/plugin.h"

/* Distinct error codes tracked by name; more are counted as "other". */
#define DUET_METRICS_ERROR_CODES 32

typedef struct duet_metric {
  char *name;
  char *help;
  duet_metric_type_t type;
  int64_t value;
} duet_metric_t;

typedef struct duet_metrics {
  duet_metric_t *list; /* registered by plugins; id = index + 1 */
  size_t count;
  uint64_t accepted;
  uint64_t messages;
  uint64_t closed[DUET_CLOSE_TAKEOVER + 1];
  struct {
    char code[40];
    uint64_t count;
  } errors[DUET_METRICS_ERROR_CODES];
  size_t error_codes;
  uint64_t errors_other;
} duet_metrics_t;

void duet__metrics_destroy(duet_metrics_t *m);
int64_t duet__metrics_register(duet_metrics_t *m, const char *name, const char *help, duet_metric_type_t type);
int duet__metrics_add(duet_metrics_t *m, int64_t id, int64_t delta);
int duet__metrics_set(duet_metrics_t *m, int64_t id, int64_t value);
void duet__metrics_count_error(duet_metrics_t *m, const char *code);

/* Values that live elsewhere in the server, read when /metrics is asked for. */
typedef struct duet_metrics_live {
  size_t connections_open;
  double uptime_s;
  uint64_t connections_shed;  /* accepted and closed at once: out of descriptors */
  uint64_t accept_pauses;     /* times accepting paused: out of descriptors */
  uint64_t adoptions_refused; /* failed at once (TLS) or refused by libwebsockets */
  size_t open_files_limit;
  size_t queued_bytes; /* waiting in every send queue now */
  size_t queued_bytes_peak;
  size_t queued_bytes_limit;    /* --max-queued-bytes-total */
  uint64_t queue_budget_closes; /* connections dropped to stay within it */
  uint64_t log_lines_suppressed;
  int degraded; /* a plugin said so (set_health) */
  char degraded_reasons[512];
} duet_metrics_live_t;

/* Writes the whole exposition. */
void duet__metrics_render(const duet_metrics_t *m, FILE *out, const duet_metrics_live_t *live);

#endif
