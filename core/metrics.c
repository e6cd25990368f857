#include "metrics.h"

#include "duet_build_config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void duet__metrics_destroy(duet_metrics_t *m) {
  for (size_t i = 0; i < m->count; i++) {
    free(m->list[i].name);
    free(m->list[i].help);
  }
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

int64_t duet__metrics_register(duet_metrics_t *m, const char *name, const char *help, duet_metric_type_t type) {
  if (!valid_name(name) || (type != DUET_METRIC_COUNTER && type != DUET_METRIC_GAUGE))
    return DUET_EINVAL;
  for (size_t i = 0; i < m->count; i++)
    if (strcmp(m->list[i].name, name) == 0)
      return m->list[i].type == type ? (int64_t)i + 1 : DUET_EINVAL;
  duet_metric_t *list = realloc(m->list, (m->count + 1) * sizeof *list);
  if (!list)
    return DUET_ENOMEM;
  m->list = list;
  duet_metric_t *metric = &list[m->count];
  metric->name = strdup(name);
  metric->help = strdup(help ? help : "");
  metric->type = type;
  metric->value = 0;
  if (!metric->name || !metric->help) {
    free(metric->name);
    free(metric->help);
    return DUET_ENOMEM;
  }
  return (int64_t)++m->count;
}

int duet__metrics_add(duet_metrics_t *m, int64_t id, int64_t delta) {
  if (id < 1 || (size_t)id > m->count)
    return DUET_ENOENT;
  duet_metric_t *metric = &m->list[id - 1];
  if (metric->type == DUET_METRIC_COUNTER && delta < 0)
    return DUET_EINVAL;
  metric->value += delta;
  return 0;
}

int duet__metrics_set(duet_metrics_t *m, int64_t id, int64_t value) {
  if (id < 1 || (size_t)id > m->count)
    return DUET_ENOENT;
  if (m->list[id - 1].type != DUET_METRIC_GAUGE)
    return DUET_EINVAL;
  m->list[id - 1].value = value;
  return 0;
}

void duet__metrics_count_error(duet_metrics_t *m, const char *code) {
  for (size_t i = 0; i < m->error_codes; i++)
    if (strcmp(m->errors[i].code, code) == 0) {
      m->errors[i].count++;
      return;
    }
  /* Codes are chosen by duetd and its plugins, yet a bound keeps a plugin
   * that invents codes from growing the exposition without end. */
  if (m->error_codes < DUET_METRICS_ERROR_CODES && strlen(code) < sizeof m->errors[0].code) {
    snprintf(m->errors[m->error_codes].code, sizeof m->errors[0].code, "%s", code);
    m->errors[m->error_codes++].count = 1;
    return;
  }
  m->errors_other++;
}

/* The exposition below is left out of a -Dmetrics=false build. */
#if DUET_WITH_METRICS
static long resident_bytes(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f)
    return -1;
  if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
    resident = -1;
  fclose(f);
  return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

/* Label values here are codes of [a-z0-9-]; escaping keeps any other safe. */
static void put_label(FILE *out, const char *value) {
  for (const char *c = value; *c; c++) {
    if (*c == '\\' || *c == '"')
      fputc('\\', out);
    if (*c == '\n')
      fputs("\\n", out);
    else
      fputc(*c, out);
  }
}

static void put_value(FILE *out, const char *name, const char *type, const char *help, unsigned long long value) {
  fprintf(out, "# HELP duet_%s %s\n# TYPE duet_%s %s\nduet_%s %llu\n", name, help, name, type, name, value);
}

/* What protects the server from floods: descriptors, send memory, log. */
static void render_protection(FILE *out, const duet_metrics_live_t *live) {
  put_value(out, "connections_shed_total", "counter",
            "TCP connections closed right after accept because duetd was out of file descriptors.",
            live->connections_shed);
  put_value(out, "accept_pauses_total", "counter",
            "Times duetd stopped accepting for a moment because it was out of file descriptors.", live->accept_pauses);
  put_value(out, "connections_dropped_on_adoption_total", "counter",
            "Accepted connections that failed at once (most often a TLS handshake) before any request.",
            live->adoptions_refused);
  put_value(out, "open_files_limit", "gauge", "The open-files limit duetd runs with.", live->open_files_limit);
  put_value(out, "send_queue_bytes", "gauge", "Bytes waiting in all send queues now.", live->queued_bytes);
  put_value(out, "send_queue_bytes_peak", "gauge", "The most bytes waiting in all send queues at once since start.",
            live->queued_bytes_peak);
  put_value(out, "send_queue_bytes_limit", "gauge", "--max-queued-bytes-total: the bound on all send queues.",
            live->queued_bytes_limit);
  put_value(out, "send_budget_closes_total", "counter",
            "Connections closed because all send queues together reached --max-queued-bytes-total.",
            live->queue_budget_closes);
  put_value(out, "log_lines_suppressed_total", "counter",
            "Repeated log lines left out by the per-kind log limit (each kind has a summary line).",
            live->log_lines_suppressed);
}

void duet__metrics_render(const duet_metrics_t *m, FILE *out, const duet_metrics_live_t *live) {
  fprintf(out,
          "# HELP duet_connections_open WebSocket connections open now.\n"
          "# TYPE duet_connections_open gauge\nduet_connections_open %zu\n",
          live->connections_open);
  fprintf(out,
          "# HELP duet_connections_accepted_total WebSocket connections accepted.\n"
          "# TYPE duet_connections_accepted_total counter\nduet_connections_accepted_total %llu\n",
          (unsigned long long)m->accepted);
  fprintf(out, "# HELP duet_connections_closed_total WebSocket connections closed, by reason.\n"
               "# TYPE duet_connections_closed_total counter\n");
  for (int why = 0; why <= DUET_CLOSE_TAKEOVER; why++)
    fprintf(out, "duet_connections_closed_total{reason=\"%s\"} %llu\n",
            duet_close_reason_name((duet_close_reason_t)why), (unsigned long long)m->closed[why]);
  fprintf(out,
          "# HELP duet_messages_received_total Signaling messages received (whole text messages).\n"
          "# TYPE duet_messages_received_total counter\nduet_messages_received_total %llu\n",
          (unsigned long long)m->messages);
  fprintf(out, "# HELP duet_errors_total Error answers sent to clients, by code.\n"
               "# TYPE duet_errors_total counter\n");
  for (size_t i = 0; i < m->error_codes; i++) {
    fputs("duet_errors_total{code=\"", out);
    put_label(out, m->errors[i].code);
    fprintf(out, "\"} %llu\n", (unsigned long long)m->errors[i].count);
  }
  if (m->errors_other)
    fprintf(out, "duet_errors_total{code=\"other\"} %llu\n", (unsigned long long)m->errors_other);
  for (size_t i = 0; i < m->count; i++) {
    const duet_metric_t *metric = &m->list[i];
    fprintf(out, "# HELP duet_%s ", metric->name);
    for (const char *c = metric->help; *c; c++)
      if (*c == '\n')
        fputs("\\n", out);
      else if (*c == '\\')
        fputs("\\\\", out);
      else
        fputc(*c, out);
    fprintf(out, "\n# TYPE duet_%s %s\nduet_%s %lld\n", metric->name,
            metric->type == DUET_METRIC_COUNTER ? "counter" : "gauge", metric->name, (long long)metric->value);
  }
  render_protection(out, live);
  fprintf(out,
          "# HELP duet_process_resident_memory_bytes Resident memory of duetd.\n"
          "# TYPE duet_process_resident_memory_bytes gauge\nduet_process_resident_memory_bytes %ld\n",
          resident_bytes());
  fprintf(out,
          "# HELP duet_uptime_seconds Seconds since duetd started.\n"
          "# TYPE duet_uptime_seconds gauge\nduet_uptime_seconds %.3f\n",
          live->uptime_s);
}
#endif
