#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static duet_log_level_t current_level = DUET_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void duet__log_set_level(duet_log_level_t level) { current_level = level; }

duet_log_level_t duet__log_level(void) { return current_level; }

void duet__log(duet_log_level_t level, const char *fmt, ...) {
  if (level > current_level)
    return;
  struct timespec ts;
  struct tm tm;
  char stamp[32];
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);

  /* One fprintf per line keeps lines whole even when stderr is a pipe. */
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s.%03ldZ duetd %s: %s\n", stamp, ts.tv_nsec / 1000000L, level_names[level], line);
}
