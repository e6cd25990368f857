/* --workers N: a supervisor that serves nothing itself. It makes the
 * development certificate once, reserves the public port(s), and runs N
 * copies of duetd that share them with SO_REUSEPORT; it restarts a worker
 * that dies (with a back-off), passes SIGHUP, SIGINT and SIGTERM on, and
 * gives up when workers keep failing at start. */
#ifndef DUET_WORKERS_H
#define DUET_WORKERS_H

#include "options.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Runs opt->workers workers, each this program started again with argv
 * (argc entries, argv[0] included) minus --workers and --port, plus
 * --port (the port actually reserved), --worker-index K and
 * --worker-count N (a worker's node id is its base plus -wK, see
 * node_identity.h). Returns 0 when every worker stopped cleanly after
 * SIGINT or SIGTERM, DUET_EINVAL when a worker found a usage error (its
 * plugins refused the settings), another DUET_E* for any other failure. */
int duet_workers_run(const duet_options_t *opt, int argc, const char *const *argv);

#ifdef __cplusplus
}
#endif

#endif
