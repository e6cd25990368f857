#include "process_metrics.h"

#include <stdio.h>
#include <unistd.h>

#include "log.h"

/* The three listeners' counters, summed. */
typedef struct listener_totals {
  unsigned long long shed, pauses, refused;
} listener_totals_t;

static listener_totals_t listener_totals(const void *data) {
  const duet_process_metrics_t *p = data;
  listener_totals_t sum = {0, 0, 0};
  for (size_t i = 0; i < sizeof p->listeners / sizeof p->listeners[0]; i++) {
    sum.shed += p->listeners[i]->shed;
    sum.pauses += p->listeners[i]->pauses;
    sum.refused += p->listeners[i]->refused;
  }
  return sum;
}

static void put_shed(const void *data, duet_metrics_out_t *out) {
  duet__metrics_put(out, NULL, (int64_t)listener_totals(data).shed);
}
static void put_pauses(const void *data, duet_metrics_out_t *out) {
  duet__metrics_put(out, NULL, (int64_t)listener_totals(data).pauses);
}
static void put_refused(const void *data, duet_metrics_out_t *out) {
  duet__metrics_put(out, NULL, (int64_t)listener_totals(data).refused);
}
static void put_open_files_limit(const void *data, duet_metrics_out_t *out) {
  duet__metrics_put(out, NULL, (int64_t)((const duet_process_metrics_t *)data)->open_files_limit);
}
static void put_log_suppressed(const void *data, duet_metrics_out_t *out) {
  (void)data;
  duet__metrics_put(out, NULL, (int64_t)duet__log_suppressed_total());
}
static void put_resident(const void *data, duet_metrics_out_t *out) {
  (void)data;
  long pages = 0, resident = -1;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
      resident = -1;
    fclose(f);
  }
  duet__metrics_put(out, NULL, resident < 0 ? -1 : (int64_t)resident * sysconf(_SC_PAGESIZE));
}
static void put_uptime(const void *data, duet_metrics_out_t *out) {
  const duet_process_metrics_t *p = data;
  duet__metrics_put_seconds(out, NULL, (double)(uv_now(p->loop) - p->started_ms) / 1000.0);
}

/* What protects the server from floods (descriptors, the log), and the process. */
static const duet_series_t process_series[] = {
    {"connections_shed_total", "TCP connections closed right after accept because duetd was out of file descriptors.",
     DUET_METRIC_COUNTER, NULL, put_shed},
    {"accept_pauses_total", "Times duetd stopped accepting for a moment because it was out of file descriptors.",
     DUET_METRIC_COUNTER, NULL, put_pauses},
    {"connections_dropped_on_adoption_total",
     "Accepted connections that failed at once (most often a TLS handshake) before any request.", DUET_METRIC_COUNTER,
     NULL, put_refused},
    {"open_files_limit", "The open-files limit duetd runs with.", DUET_METRIC_GAUGE, NULL, put_open_files_limit},
    {"log_lines_suppressed_total",
     "Repeated log lines left out by the per-kind log limit (each kind has a summary line).", DUET_METRIC_COUNTER, NULL,
     put_log_suppressed},
    {"process_resident_memory_bytes", "Resident memory of duetd.", DUET_METRIC_GAUGE, NULL, put_resident},
    {"uptime_seconds", "Seconds since duetd started.", DUET_METRIC_GAUGE, NULL, put_uptime},
};

int duet__process_metrics_add(duet_metrics_t *metrics, const duet_process_metrics_t *p) {
  return duet__metrics_add_series(metrics, process_series, sizeof process_series / sizeof process_series[0], p);
}
