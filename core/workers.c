/* The supervisor of --workers: fork and exec of this program N times, one
 * libuv loop for the signals and the restart timers. It holds the public
 * ports bound (not listening) for its whole life, so port 0 becomes one
 * port for all workers and a second duetd on the same port still fails. */
#define _GNU_SOURCE
#include "workers.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <uv.h>

#include "listener.h"
#include "log.h"
#include "node_identity.h"
#include "tls_config.h"

/* A worker that dies is started again after 1 s, then 2, 4, ... up to 30 s
 * while it keeps dying; one that ran this long starts the series anew. */
#define RESTART_MIN_MS 1000u
#define RESTART_MAX_MS 30000u
#define HEALTHY_AFTER_MS 30000u
/* A worker that exits within this time failed at start; this many such
 * failures in a row and the supervisor gives up. */
#define START_GRACE_MS 5000u
#define MAX_START_FAILURES 5u
/* After SIGTERM a worker closes its connections within 2 s; past this it
 * is killed. */
#define STOP_TIMEOUT_MS 6000u

/* The arguments each worker gets besides the user's. */
#define EXTRA_ARGS 6

struct supervisor;

typedef struct worker {
  struct supervisor *sup;
  unsigned index; /* 1..N */
  pid_t pid;      /* 0: not running */
  uint64_t started_ms;
  unsigned next_delay_ms;  /* the next restart's back-off */
  unsigned start_failures; /* exits within START_GRACE_MS, in a row */
  uv_timer_t restart_timer;
} worker_t;

typedef struct supervisor {
  const duet_options_t *opt;
  uv_loop_t loop;
  uv_signal_t signals[5]; /* SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGUSR1 */
  uv_timer_t stop_timer;
  worker_t *workers;
  unsigned count;
  const char **args; /* the workers' command line; EXTRA_ARGS + 1 slots left at the end */
  size_t arg_count;
  char port_text[8];
  char count_text[16];
  int held[2]; /* the main and redirect ports, bound while we live */
  int stopping;
  int closed;
  int result; /* 0, DUET_EINVAL when a worker found a usage error, else DUET_EIO */
} supervisor_t;

#define WATCHED_SIGNALS 5
static const int watched_signals[WATCHED_SIGNALS] = {SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGUSR1};

static size_t running(const supervisor_t *sup) {
  size_t n = 0;
  for (unsigned i = 0; i < sup->count; i++)
    n += sup->workers[i].pid != 0;
  return n;
}

static void signal_all(supervisor_t *sup, int signum) {
  for (unsigned i = 0; i < sup->count; i++)
    if (sup->workers[i].pid)
      kill(sup->workers[i].pid, signum);
}

static void close_handles(supervisor_t *sup) {
  if (sup->closed)
    return;
  sup->closed = 1;
  for (size_t i = 0; i < WATCHED_SIGNALS; i++)
    uv_close((uv_handle_t *)&sup->signals[i], NULL);
  uv_close((uv_handle_t *)&sup->stop_timer, NULL);
  for (unsigned i = 0; i < sup->count; i++)
    uv_close((uv_handle_t *)&sup->workers[i].restart_timer, NULL);
}

/* ---- starting a worker ---- */

/* In the child, between fork and exec: only async-signal-safe calls. */
static void exec_worker(const char *const *args, pid_t parent) {
  for (size_t i = 0; i < WATCHED_SIGNALS; i++)
    signal(watched_signals[i], SIG_DFL);
  /* Until the worker's main notes it, a drain must not end it: kept ignored across exec. */
  signal(SIGUSR1, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  /* Its own process group: Ctrl-C on a terminal reaches the supervisor
   * alone, which passes it on once. */
  setpgid(0, 0);
#ifdef __linux__
  /* A supervisor killed with SIGKILL takes its workers along. */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
  if (getppid() != parent)
    _exit(1);
  execv("/proc/self/exe", (char *const *)args);
  execvp(args[0], (char *const *)args);
  static const char msg[] = "duetd: cannot start a worker: exec of /proc/self/exe and of argv[0] failed\n";
  ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)ignored;
  _exit(1);
}

static int spawn(worker_t *w) {
  supervisor_t *sup = w->sup;
  char index_text[16];
  snprintf(index_text, sizeof index_text, "%u", w->index);
  size_t n = sup->arg_count;
  sup->args[n++] = "--worker-index";
  sup->args[n++] = index_text;
  sup->args[n++] = "--worker-count";
  sup->args[n++] = sup->count_text;
  sup->args[n] = NULL;
  /* Signals stay blocked until the child has dropped libuv's handlers:
   * they would write to the supervisor's signal pipe. */
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &old);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0)
    exec_worker(sup->args, parent);
  int fork_errno = errno;
  sigprocmask(SIG_SETMASK, &old, NULL);
  if (pid < 0) {
    DUET_ERROR("cannot start worker %u: fork failed: %s", w->index, strerror(fork_errno));
    return -fork_errno;
  }
  w->pid = pid;
  uv_update_time(&sup->loop);
  w->started_ms = uv_now(&sup->loop);
  DUET_INFO("worker %u started (pid %ld)", w->index, (long)pid);
  return 0;
}

static void restart(uv_timer_t *timer) {
  worker_t *w = timer->data;
  if (!w->sup->stopping && spawn(w) != 0)
    uv_timer_start(&w->restart_timer, restart, RESTART_MAX_MS, 0);
}

/* ---- stopping ---- */

static void stop_overdue(uv_timer_t *timer) {
  supervisor_t *sup = timer->data;
  DUET_ERROR("%zu worker(s) did not stop in time; killing them", running(sup));
  signal_all(sup, SIGKILL);
  sup->result = DUET_EIO;
}

/* Asks every worker to stop (SIGTERM, SIGINT) or drain (SIGUSR1: it exits 0
 * once its connections have gone) with signum; none is started again, and
 * the loop ends when the last is gone. Past grace_ms they are killed. */
static void stop_all(supervisor_t *sup, int signum, uint64_t grace_ms) {
  sup->stopping = 1;
  for (unsigned i = 0; i < sup->count; i++)
    uv_timer_stop(&sup->workers[i].restart_timer);
  if (running(sup) == 0) {
    close_handles(sup);
    return;
  }
  signal_all(sup, signum);
  uv_timer_start(&sup->stop_timer, stop_overdue, grace_ms, 0);
}

static void drain_all(supervisor_t *sup) {
  stop_all(sup, SIGUSR1, (uint64_t)(sup->opt->drain_timeout_s * 1000.0) + STOP_TIMEOUT_MS);
}

/* ---- a worker ended ---- */

static void describe_status(int status, char *buf, size_t len) {
  if (WIFEXITED(status))
    snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
  else if (WIFSIGNALED(status))
    snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
  else
    snprintf(buf, len, "ended (wait status %d)", status);
}

/* A worker that ended while the supervisor runs: start it again after its
 * back-off, or give up when restarting cannot help. */
static void plan_restart(worker_t *w, int status, const char *how) {
  supervisor_t *sup = w->sup;
  uint64_t ran_ms = uv_now(&sup->loop) - w->started_ms;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 2) {
    DUET_ERROR("worker %u %s: a usage error (see above), which restarting will not heal; stopping", w->index, how);
    sup->result = DUET_EINVAL;
    stop_all(sup, SIGTERM, STOP_TIMEOUT_MS);
    return;
  }
  w->start_failures = ran_ms < START_GRACE_MS ? w->start_failures + 1 : 0;
  if (w->start_failures >= MAX_START_FAILURES) {
    DUET_ERROR("worker %u %s: %u times in a row within %u s of starting, so giving up (see its errors above)", w->index,
               how, w->start_failures, START_GRACE_MS / 1000);
    sup->result = DUET_EIO;
    stop_all(sup, SIGTERM, STOP_TIMEOUT_MS);
    return;
  }
  if (ran_ms >= HEALTHY_AFTER_MS || w->next_delay_ms == 0)
    w->next_delay_ms = RESTART_MIN_MS;
  unsigned delay = w->next_delay_ms;
  w->next_delay_ms = delay * 2 > RESTART_MAX_MS ? RESTART_MAX_MS : delay * 2;
  DUET_WARN("worker %u %s after %.1f s; starting it again in %u s", w->index, how, (double)ran_ms / 1000.0,
            delay / 1000);
  uv_timer_start(&w->restart_timer, restart, delay, 0);
}

static void worker_ended(worker_t *w, int status) {
  supervisor_t *sup = w->sup;
  char how[128];
  describe_status(status, how, sizeof how);
  long pid = (long)w->pid;
  w->pid = 0;
  if (!sup->stopping) {
    char what[160];
    snprintf(what, sizeof what, "(pid %ld) %s", pid, how);
    plan_restart(w, status, what);
    return;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    DUET_ERROR("worker %u (pid %ld) %s while stopping", w->index, pid, how);
    if (sup->result == 0)
      sup->result = DUET_EIO;
  }
  if (running(sup) == 0) {
    DUET_INFO("all workers stopped");
    close_handles(sup);
  }
}

static void reap(supervisor_t *sup) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
    for (unsigned i = 0; i < sup->count; i++)
      if (sup->workers[i].pid == pid) {
        worker_ended(&sup->workers[i], status);
        break;
      }
}

static void on_signal(uv_signal_t *handle, int signum) {
  supervisor_t *sup = handle->data;
  if (signum == SIGCHLD) {
    reap(sup);
  } else if (signum == SIGHUP) {
    DUET_INFO("SIGHUP: passing it on to %zu worker(s)", running(sup));
    signal_all(sup, SIGHUP);
  } else if (signum == SIGUSR1) {
    if (sup->stopping)
      return;
    DUET_INFO("SIGUSR1: draining %zu worker(s)", running(sup));
    drain_all(sup);
  } else if (sup->stopping) {
    DUET_WARN("second signal: telling the workers to stop now");
    signal_all(sup, signum);
  } else {
    DUET_INFO("%s: stopping %zu worker(s)", signum == SIGINT ? "SIGINT" : "SIGTERM", running(sup));
    stop_all(sup, signum, STOP_TIMEOUT_MS);
  }
}

/* ---- start-up ---- */

/* The user's arguments minus --workers and --port, then --port PORT. */
static int build_args(supervisor_t *sup, int argc, const char *const *argv) {
  sup->args = calloc((size_t)argc + 2 + EXTRA_ARGS + 1, sizeof *sup->args);
  if (!sup->args)
    return DUET_ENOMEM;
  size_t n = 0;
  sup->args[n++] = argv[0];
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--workers") == 0 || strcmp(a, "--port") == 0) {
      i++; /* and its value */
      continue;
    }
    if (strncmp(a, "--workers=", 10) == 0 || strncmp(a, "--port=", 7) == 0)
      continue;
    sup->args[n++] = a;
  }
  sup->args[n++] = "--port";
  sup->args[n++] = sup->port_text;
  sup->arg_count = n;
  return 0;
}

/* Binds the public ports without listening: port 0 becomes a real port the
 * workers share, and a port some other program listens on fails here, once. */
static int hold_ports(supervisor_t *sup) {
  const duet_options_t *opt = sup->opt;
  char err[1024];
  int port = 0;
  sup->held[0] = duet__listener_bind(opt->address, opt->port, DUET_LISTENER_HOLD, &port, err, sizeof err);
  if (sup->held[0] < 0) {
    DUET_ERROR("%s", err);
    return sup->held[0];
  }
  snprintf(sup->port_text, sizeof sup->port_text, "%d", port);
  if (opt->redirect_port) {
    int ignored = 0;
    sup->held[1] = duet__listener_bind(opt->address, opt->redirect_port, DUET_LISTENER_HOLD, &ignored, err, sizeof err);
    if (sup->held[1] < 0) {
      DUET_ERROR("--http-redirect-port: %s", err);
      return sup->held[1];
    }
  }
  return 0;
}

/* The first-run work a worker would otherwise race its siblings for: the
 * development certificate is made here, once. */
static int prepare(supervisor_t *sup, int argc, const char *const *argv) {
  static duet_tls_t tls;
  int r = duet__tls_prepare(&tls, sup->opt);
  if (r == 0)
    r = hold_ports(sup);
  if (r != 0)
    return r;
  snprintf(sup->count_text, sizeof sup->count_text, "%u", sup->count);
  sup->workers = calloc(sup->count, sizeof *sup->workers);
  if (build_args(sup, argc, argv) != 0 || !sup->workers) {
    DUET_ERROR("out of memory");
    return DUET_ENOMEM;
  }
  return 0;
}

static void start_loop_handles(supervisor_t *sup) {
  for (size_t i = 0; i < WATCHED_SIGNALS; i++) {
    uv_signal_init(&sup->loop, &sup->signals[i]);
    sup->signals[i].data = sup;
    uv_signal_start(&sup->signals[i], on_signal, watched_signals[i]);
  }
  uv_timer_init(&sup->loop, &sup->stop_timer);
  sup->stop_timer.data = sup;
  for (unsigned i = 0; i < sup->count; i++) {
    worker_t *w = &sup->workers[i];
    w->sup = sup;
    w->index = i + 1;
    uv_timer_init(&sup->loop, &w->restart_timer);
    w->restart_timer.data = w;
  }
}

static void release(supervisor_t *sup) {
  for (size_t i = 0; i < 2; i++)
    if (sup->held[i] >= 0)
      close(sup->held[i]);
  free(sup->workers);
  free(sup->args);
}

int duet_workers_run(const duet_options_t *opt, int argc, const char *const *argv) {
  static supervisor_t sup;
  memset(&sup, 0, sizeof sup);
  sup.opt = opt;
  sup.count = opt->workers;
  sup.held[0] = sup.held[1] = -1;
  duet__log_set_level(opt->log_level);
  signal(SIGPIPE, SIG_IGN);
  int r = prepare(&sup, argc, argv);
  if (r == 0 && uv_loop_init(&sup.loop) != 0)
    r = DUET_EIO;
  if (r != 0) {
    release(&sup);
    return r;
  }
  start_loop_handles(&sup);
  if (duet__early_drain_noted()) {
    DUET_INFO("SIGUSR1 (while starting): draining");
    drain_all(&sup);
  }
  char node[300];
  duet__node_id(opt, atoi(sup.port_text), node, sizeof node);
  DUET_INFO("starting %u worker(s) on port %s, node ids %s-w1, -w2, ...", sup.count, sup.port_text, node);
  for (unsigned i = 0; i < sup.count && !sup.stopping; i++)
    if (spawn(&sup.workers[i]) != 0) {
      sup.result = DUET_EIO;
      stop_all(&sup, SIGTERM, STOP_TIMEOUT_MS);
    }
  uv_run(&sup.loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&sup.loop) != 0)
    DUET_WARN("the supervisor's event loop still had open handles at exit");
  release(&sup);
  DUET_INFO("stopped%s", sup.result == 0 ? "" : " after a failure");
  return sup.result;
}
