/* duetd's log: one line per record on stderr, filtered by level. */
#ifndef DUET_LOG_H
#define DUET_LOG_H

#include "duet/plugin.h"

void duet__log_set_level(duet_log_level_t level);
duet_log_level_t duet__log_level(void);
void duet__log(duet_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define DUET_ERROR(...) duet__log(DUET_LOG_ERROR, __VA_ARGS__)
#define DUET_WARN(...) duet__log(DUET_LOG_WARN, __VA_ARGS__)
#define DUET_INFO(...) duet__log(DUET_LOG_INFO, __VA_ARGS__)
/* Debug records sit on per-connection paths: skip formatting their arguments
 * (connection names, ...) unless debug logging is on. */
#define DUET_DEBUG(...)                                                                                 \
  do {                                                                                                  \
    if (duet__log_level() >= DUET_LOG_DEBUG)                                                            \
      duet__log(DUET_LOG_DEBUG, __VA_ARGS__);                                                           \
  } while (0)

#endif
