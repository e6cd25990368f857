/* duetd's exit codes, as `man 8 duetd` lists them. main() alone turns a
 * result into one; the core returns 0 or a negative DUET_E* code. */
#ifndef DUET_EXIT_CODE_H
#define DUET_EXIT_CODE_H

#include "duet/plugin.h"

typedef enum duet_exit_code {
  DUET_EXIT_OK = 0,      /* ran and stopped cleanly, or printed what was asked (--help, --list-plugins) */
  DUET_EXIT_FAILURE = 1, /* could not start or failed while running: a file, a port, memory, a worker */
  DUET_EXIT_USAGE = 2    /* the command line or config file must change: a bad option, value or plugin */
} duet_exit_code_t;

/* DUET_EINVAL is what the command line must fix; every other error is a
 * failure of the environment. */
static inline duet_exit_code_t duet_exit_code_of(int result) {
  return result == 0 ? DUET_EXIT_OK : result == DUET_EINVAL ? DUET_EXIT_USAGE : DUET_EXIT_FAILURE;
}

#endif
