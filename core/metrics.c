#include "metrics.h"

#include "duet_build_config.h"

#include <stdlib.h>
#include <string.h>

struct duet_metrics_out {
  FILE *file;
  const duet_metric_t *metric;
};

static void free_metric(duet_metric_t *metric) {
  free(metric->name);
  free(metric->help);
  free(metric->label);
}

void duet__metrics_destroy(duet_metrics_t *m) {
  for (size_t i = 0; i < m->count; i++)
    free_metric(&m->list[i]);
  free(m->list);
  memset(m, 0, sizeof *m);
}

static int valid_name(const char *name) {
  if (!name || !*name || (*name >= '0' && *name <= '9'))
    return 0;
  for (const char *c = name; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
      return 0;
  return strlen(name) < 100;
}

static duet_metric_t *find(const duet_metrics_t *m, const char *name) {
  for (size_t i = 0; i < m->count; i++)
    if (strcmp(m->list[i].name, name) == 0)
      return &m->list[i];
  return NULL;
}

/* Appends a copy of series; returns its index or DUET_ENOMEM. */
static int64_t append(duet_metrics_t *m, const duet_series_t *series, const void *data) {
  duet_metric_t *list = realloc(m->list, (m->count + 1) * sizeof *list);
  if (!list)
    return DUET_ENOMEM;
  m->list = list;
  duet_metric_t *metric = &list[m->count];
  memset(metric, 0, sizeof *metric);
  metric->name = strdup(series->name);
  metric->help = strdup(series->help ? series->help : "");
  metric->label = series->label ? strdup(series->label) : NULL;
  metric->type = series->type;
  metric->read = series->read;
  metric->data = data;
  if (!metric->name || !metric->help || (series->label && !metric->label)) {
    free_metric(metric);
    return DUET_ENOMEM;
  }
  return (int64_t)m->count++;
}

static int valid_series(const duet_series_t *s) {
  return valid_name(s->name) && (s->type == DUET_METRIC_COUNTER || s->type == DUET_METRIC_GAUGE) && s->read &&
         (!s->label || valid_name(s->label));
}

int duet__metrics_add_series(duet_metrics_t *m, const duet_series_t *series, size_t count, const void *data) {
  for (size_t i = 0; i < count; i++) {
    if (!valid_series(&series[i]) || find(m, series[i].name))
      return DUET_EINVAL;
    int64_t r = append(m, &series[i], data);
    if (r < 0)
      return (int)r;
  }
  return 0;
}

int64_t duet__metrics_register(duet_metrics_t *m, const char *name, const char *help, duet_metric_type_t type) {
  if (!valid_name(name) || (type != DUET_METRIC_COUNTER && type != DUET_METRIC_GAUGE))
    return DUET_EINVAL;
  const duet_metric_t *known = find(m, name);
  if (known)
    return known->type == type && !known->read ? known - m->list + 1 : DUET_EINVAL;
  duet_series_t series = {name, help, type, NULL, NULL};
  int64_t index = append(m, &series, NULL);
  return index < 0 ? index : index + 1;
}

static duet_metric_t *plugin_value(duet_metrics_t *m, int64_t id) {
  if (id < 1 || (size_t)id > m->count || m->list[id - 1].read)
    return NULL;
  return &m->list[id - 1];
}

int duet__metrics_add(duet_metrics_t *m, int64_t id, int64_t delta) {
  duet_metric_t *metric = plugin_value(m, id);
  if (!metric)
    return DUET_ENOENT;
  if (metric->type == DUET_METRIC_COUNTER && delta < 0)
    return DUET_EINVAL;
  metric->value += delta;
  return 0;
}

int duet__metrics_set(duet_metrics_t *m, int64_t id, int64_t value) {
  duet_metric_t *metric = plugin_value(m, id);
  if (!metric)
    return DUET_ENOENT;
  if (metric->type != DUET_METRIC_GAUGE)
    return DUET_EINVAL;
  metric->value = value;
  return 0;
}

void duet__label_counts_add(duet_label_counts_t *c, const char *value) {
  for (size_t i = 0; i < c->used; i++)
    if (strcmp(c->seen[i].value, value) == 0) {
      c->seen[i].count++;
      return;
    }
  /* Codes are chosen by duetd and its plugins, yet a bound keeps a plugin
   * that invents codes from growing the exposition without end. */
  if (c->used < DUET_LABEL_COUNTS_MAX && strlen(value) < sizeof c->seen[0].value) {
    snprintf(c->seen[c->used].value, sizeof c->seen[0].value, "%s", value);
    c->seen[c->used++].count = 1;
    return;
  }
  c->other++;
}

void duet__label_counts_put(const duet_label_counts_t *c, duet_metrics_out_t *out) {
  for (size_t i = 0; i < c->used; i++)
    duet__metrics_put(out, c->seen[i].value, (int64_t)c->seen[i].count);
  if (c->other)
    duet__metrics_put(out, "other", (int64_t)c->other);
}

/* Label values here are codes of [a-z0-9-]; escaping keeps any other safe. */
static void put_label(FILE *file, const char *value) {
  for (const char *c = value; *c; c++) {
    if (*c == '\\' || *c == '"')
      fputc('\\', file);
    if (*c == '\n')
      fputs("\\n", file);
    else
      fputc(*c, file);
  }
}

static void put_name(duet_metrics_out_t *out, const char *label_value) {
  fprintf(out->file, "duet_%s", out->metric->name);
  if (out->metric->label && label_value) {
    fprintf(out->file, "{%s=\"", out->metric->label);
    put_label(out->file, label_value);
    fputs("\"}", out->file);
  }
}

void duet__metrics_put(duet_metrics_out_t *out, const char *label_value, int64_t value) {
  put_name(out, label_value);
  fprintf(out->file, " %lld\n", (long long)value);
}

void duet__metrics_put_seconds(duet_metrics_out_t *out, const char *label_value, double value) {
  put_name(out, label_value);
  fprintf(out->file, " %.3f\n", value);
}

/* The exposition below is left out of a -Dmetrics=false build. */
#if DUET_WITH_METRICS
static void render_one(const duet_metric_t *metric, FILE *file) {
  /* Help text escapes backslash and newline (the format's rule). */
  fprintf(file, "# HELP duet_%s ", metric->name);
  for (const char *c = metric->help; *c; c++)
    if (*c == '\n')
      fputs("\\n", file);
    else if (*c == '\\')
      fputs("\\\\", file);
    else
      fputc(*c, file);
  fprintf(file, "\n# TYPE duet_%s %s\n", metric->name, metric->type == DUET_METRIC_COUNTER ? "counter" : "gauge");
  duet_metrics_out_t out = {file, metric};
  if (metric->read)
    metric->read(metric->data, &out);
  else
    duet__metrics_put(&out, NULL, metric->value);
}

void duet__metrics_render(const duet_metrics_t *m, FILE *out) {
  for (size_t i = 0; i < m->count; i++)
    if (m->list[i].read)
      render_one(&m->list[i], out);
  for (size_t i = 0; i < m->count; i++)
    if (!m->list[i].read)
      render_one(&m->list[i], out);
}
#endif
