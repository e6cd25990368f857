#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static duet_log_level_t current_level = DUET_LOG_INFO;
static char program_name[32] = "duetd";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* Every limit that has been used, for the periodic summary. */
static duet_log_limit_t *limits;
static uint64_t suppressed_total;

void duet__log_set_level(duet_log_level_t level) { current_level = level; }

void duet__log_set_name(const char *name) { snprintf(program_name, sizeof program_name, "%s", name); }

duet_log_level_t duet__log_level(void) { return current_level; }

static void write_line(duet_log_level_t level, const char *fmt, va_list ap) {
  struct timespec ts;
  struct tm tm;
  char stamp[32];
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);

  /* One fprintf per line keeps lines whole even when stderr is a pipe. */
  char line[1024];
  vsnprintf(line, sizeof line, fmt, ap);
  fprintf(stderr, "%s.%03ldZ %s %s: %s\n", stamp, ts.tv_nsec / 1000000L, program_name, level_names[level], line);
}

void duet__log(duet_log_level_t level, const char *fmt, ...) {
  if (level > current_level)
    return;
  va_list ap;
  va_start(ap, fmt);
  write_line(level, fmt, ap);
  va_end(ap);
}

static uint64_t monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void write_summary(duet_log_limit_t *limit, uint64_t now) {
  duet__log(DUET_LOG_WARN,
            "suppressed %llu more \"%s\" line(s) in the last %.1f s (each kind is logged at most %u "
            "time(s) per %d s)",
            (unsigned long long)limit->suppressed, limit->kind, (double)(now - limit->window_start_ms) / 1000.0,
            limit->burst ? limit->burst : 1u, DUET_LOG_LIMIT_INTERVAL_MS / 1000);
  limit->suppressed = 0;
}

void duet__log_limited(duet_log_limit_t *limit, duet_log_level_t level, const char *fmt, ...) {
  if (level > current_level)
    return;
  uint64_t now = monotonic_ms();
  if (!limit->registered) {
    limit->registered = true;
    limit->next = limits;
    limits = limit;
    limit->window_start_ms = now;
  }
  if (now - limit->window_start_ms >= DUET_LOG_LIMIT_INTERVAL_MS) {
    if (limit->suppressed)
      write_summary(limit, now);
    limit->window_start_ms = now;
    limit->written = 0;
  }
  if (limit->written >= (limit->burst ? limit->burst : 1u)) {
    limit->suppressed++;
    suppressed_total++;
    return;
  }
  limit->written++;
  va_list ap;
  va_start(ap, fmt);
  write_line(level, fmt, ap);
  va_end(ap);
}

void duet__log_flush_suppressed(void) {
  uint64_t now = monotonic_ms();
  for (duet_log_limit_t *limit = limits; limit; limit = limit->next)
    if (limit->suppressed && now - limit->window_start_ms >= DUET_LOG_LIMIT_INTERVAL_MS) {
      write_summary(limit, now);
      limit->window_start_ms = now;
      limit->written = 0;
    }
}

uint64_t duet__log_suppressed_total(void) { return suppressed_total; }

void duet__log_limit_release(duet_log_limit_t *limit) {
  for (duet_log_limit_t **at = &limits; *at; at = &(*at)->next)
    if (*at == limit) {
      *at = limit->next;
      break;
    }
  limit->registered = false;
}
