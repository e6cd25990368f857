/* duetd's log: one line per record on stderr, filtered by level. Lines that
 * can repeat per connection or per event go through a limit per kind, so no
 * flood of clients can flood the log. */
#ifndef DUET_LOG_H
#define DUET_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "duet/plugin.h"

void duet__log_set_level(duet_log_level_t level);
/* What each line calls the program: "duetd", or "duetd w2" in a worker. */
void duet__log_set_name(const char *name);
duet_log_level_t duet__log_level(void);
void duet__log(duet_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One kind of line that can repeat: the first `burst` lines of each
 * interval are written in full, the rest are counted and reported in one
 * summary line ("suppressed N more ... in the last 10 s"). Keep one of these
 * per kind for the life of the process (a static at the call site). */
typedef struct duet_log_limit {
  const char *kind; /* short description, named in the summary line */
  unsigned burst;   /* lines in full per interval; 0 means 1 */
  uint64_t window_start_ms;
  unsigned written;
  uint64_t suppressed;
  bool registered;
  struct duet_log_limit *next;
} duet_log_limit_t;

/* How long a limit's window is; one summary line at most per window. */
#define DUET_LOG_LIMIT_INTERVAL_MS 10000

void duet__log_limited(duet_log_limit_t *limit, duet_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Writes the summary of every kind whose window is over with lines still
 * unreported. Call it now and then (a timer) so a flood that stops is
 * still reported. */
void duet__log_flush_suppressed(void);
/* Unlinks a limit that is about to be freed (the static ones never are). */
void duet__log_limit_release(duet_log_limit_t *limit);
/* Lines suppressed since start, all kinds (for /metrics). */
uint64_t duet__log_suppressed_total(void);

#define DUET_ERROR(...) duet__log(DUET_LOG_ERROR, __VA_ARGS__)
#define DUET_WARN(...) duet__log(DUET_LOG_WARN, __VA_ARGS__)
#define DUET_INFO(...) duet__log(DUET_LOG_INFO, __VA_ARGS__)
/* Debug records sit on per-connection paths: skip formatting their arguments
 * (connection names, ...) unless debug logging is on. */
#define DUET_DEBUG(...)                                                                                                \
  do {                                                                                                                 \
    if (duet__log_level() >= DUET_LOG_DEBUG)                                                                           \
      duet__log(DUET_LOG_DEBUG, __VA_ARGS__);                                                                          \
  } while (0)

/* A warning that a client or a flood of them can cause again and again. */
#define DUET_WARN_LIMITED(kind_text, ...)                                                                              \
  do {                                                                                                                 \
    static duet_log_limit_t limit_ = {.kind = (kind_text)};                                                            \
    duet__log_limited(&limit_, DUET_LOG_WARN, __VA_ARGS__);                                                            \
  } while (0)
#define DUET_INFO_LIMITED(kind_text, ...)                                                                              \
  do {                                                                                                                 \
    static duet_log_limit_t limit_ = {.kind = (kind_text)};                                                            \
    duet__log_limited(&limit_, DUET_LOG_INFO, __VA_ARGS__);                                                            \
  } while (0)

#endif
