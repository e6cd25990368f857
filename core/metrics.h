/* The registry of what GET /metrics shows (Prometheus text format 0.0.4).
 * Each unit registers the series it owns when it starts: a read callback
 * gives their samples when /metrics is rendered, so the numbers stay in the
 * unit's own context. Plugins register values held here (host
 * metric_register), set and added by id. */
#ifndef DUET_METRICS_H
#define DUET_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "duet/plugin.h"

/* Where a read callback puts its samples (one render of one series). */
typedef struct duet_metrics_out duet_metrics_out_t;

/* Puts one sample of the series being read: an integer, or a number of
 * seconds (shown with 3 decimals). label_value names the sample in a
 * series with a label (escaped here); NULL in one without. */
void duet__metrics_put(duet_metrics_out_t *out, const char *label_value, int64_t value);
void duet__metrics_put_seconds(duet_metrics_out_t *out, const char *label_value, double value);

/* A series a unit owns, shown as duet_NAME. */
typedef struct duet_series {
  const char *name; /* [a-z_][a-z0-9_]*, shorter than 100 */
  const char *help;
  duet_metric_type_t type;
  const char *label; /* NULL: one sample; else the label's name, one sample per put */
  void (*read)(const void *data, duet_metrics_out_t *out);
} duet_series_t;

typedef struct duet_metric {
  char *name;
  char *help;
  char *label;
  duet_metric_type_t type;
  void (*read)(const void *data, duet_metrics_out_t *out); /* NULL: value, a plugin's */
  const void *data;
  int64_t value;
} duet_metric_t;

/* Zeroed is empty. */
typedef struct duet_metrics {
  duet_metric_t *list; /* in registration order; a plugin's id = index + 1 */
  size_t count;
} duet_metrics_t;

void duet__metrics_destroy(duet_metrics_t *m);

/* Registers count series of a unit, read with data (the unit's context).
 * Returns 0, DUET_EINVAL for a bad name or type or a name already
 * registered, or DUET_ENOMEM. */
int duet__metrics_add_series(duet_metrics_t *m, const duet_series_t *series, size_t count, const void *data);

/* A plugin's value (host metric_register): registering its name again
 * with its type returns the same id. Returns an id > 0, DUET_EINVAL for a
 * bad name, a name of another type or a unit's, or DUET_ENOMEM. */
int64_t duet__metrics_register(duet_metrics_t *m, const char *name, const char *help, duet_metric_type_t type);
/* Returns 0, DUET_ENOENT for an id that is not a plugin's value, or
 * DUET_EINVAL for a negative delta to a counter (add), a counter (set). */
int duet__metrics_add(duet_metrics_t *m, int64_t id, int64_t delta);
int duet__metrics_set(duet_metrics_t *m, int64_t id, int64_t value);

/* Writes the whole exposition: the units' series in the order they were
 * registered, then the plugins'. Each has its HELP and TYPE line, then
 * its samples (a series with a label may have none). */
void duet__metrics_render(const duet_metrics_t *m, FILE *out);

/* Counters by a label value from a set that should stay small (error
 * codes): the first DUET_LABEL_COUNTS_MAX values get a sample each, any
 * more (or longer ones) count as "other". */
#define DUET_LABEL_COUNTS_MAX 32

typedef struct duet_label_counts {
  struct {
    char value[40];
    uint64_t count;
  } seen[DUET_LABEL_COUNTS_MAX];
  size_t used;
  uint64_t other;
} duet_label_counts_t;

void duet__label_counts_add(duet_label_counts_t *c, const char *value);
/* Puts a sample per value seen, in the order first seen, then "other" if
 * any: for the read callback of the series they are. */
void duet__label_counts_put(const duet_label_counts_t *c, duet_metrics_out_t *out);

#endif
