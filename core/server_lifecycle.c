/* The server's life after start-up: signals (SIGINT/SIGTERM stop, SIGHUP
 * reloads, SIGUSR1 drains), the drain and the shutdown with their deadlines,
 * and the housekeeping timer. */
#include <signal.h>
#include <string.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "log.h"
#include "server.h"

/* Grace period at shutdown for clients to receive their close frames, and
 * for plugins to finish what the closes started (hold_exit). */
#define SHUTDOWN_GRACE_MS 2000

static void grace_over(uv_timer_t *timer) {
  duet_server_t *server = timer->data;
  if (server->sessions.conns.live > 0)
    DUET_WARN("%zu connection(s) did not close in time; dropping them", server->sessions.conns.live);
  if (server->host.exit_holds > 0)
    DUET_WARN("plugins still had work under way (%zu hold(s) on the exit) after %d ms; exiting anyway",
              server->host.exit_holds, SHUTDOWN_GRACE_MS);
  uv_stop(&server->loop);
}

/* After a shutdown began: stops once every connection has closed and no
 * plugin holds the exit (a cluster's last decisions are on their way to
 * Redis: without them the others would believe the connections are still
 * here until this node's key expires). */
static void stop_when_done(duet_server_t *server) {
  if (server->sessions.conns.live == 0 && server->host.exit_holds == 0)
    uv_stop(&server->loop);
}

void duet__server_exit_released(void *data) {
  duet_server_t *server = data;
  if (server->shutting_down)
    stop_when_done(server);
}

static void begin_shutdown(duet_server_t *server, const char *why);

static void drain_over(uv_timer_t *timer) {
  duet_server_t *server = timer->data;
  if (server->sessions.conns.live == 0)
    begin_shutdown(server, "drained: the last connection has gone");
  else
    begin_shutdown(server, "drain timeout (--drain-timeout)");
}

/* The last connection closed: after a shutdown, stop; during a drain, shut
 * down on the next loop turn (not inside the lws callback that got here). */
void duet__server_drained(void *data) {
  duet_server_t *server = data;
  if (server->shutting_down)
    stop_when_done(server);
  else if (server->draining)
    uv_timer_start(&server->drain_timer, drain_over, 0, 0);
}

/* A node leaving a cluster without dropping calls: the balancer sees
 * /healthz go 503 "draining" and sends new clients elsewhere; a client that
 * connects anyway is told server-draining and closed with 1012 (the web
 * client reconnects, through the balancer); plugins hear duet.drain (the
 * routing plugin moves the calls that can resume). duetd exits 0 once the
 * last connection has gone, or at --drain-timeout. */
void duet__server_begin_drain(duet_server_t *server, const char *why) {
  if (server->draining || server->shutting_down)
    return;
  server->draining = 1;
  size_t left = duet__sessions_drain(&server->sessions);
  DUET_INFO("%s: draining: /healthz answers 503 \"draining\" and new connections are told server-draining; "
            "%zu connection(s) left, exiting once the last has gone or in %.0f s (--drain-timeout)",
            why, left, server->opt->drain_timeout_s);
  duet_event_t event = {"duet.drain", 0, NULL, 0};
  duet__plugins_emit(server->plugins, &event);
  uint64_t timeout_ms = server->sessions.conns.live == 0 ? 0 : (uint64_t)(server->opt->drain_timeout_s * 1000.0);
  uv_timer_start(&server->drain_timer, drain_over, timeout_ms, 0);
}

static void begin_shutdown(duet_server_t *server, const char *why) {
  if (server->shutting_down)
    return;
  server->shutting_down = 1;
  uv_timer_stop(&server->drain_timer);
  duet__listener_close(&server->listener);
  duet__listener_close(&server->admin_listener);
  duet__listener_close(&server->redirect_listener);
  DUET_INFO("%s: shutting down, closing %zu connection(s)", why, server->sessions.conns.live);
  if (duet__sessions_close_all(&server->sessions) == 0 && server->host.exit_holds == 0)
    uv_stop(&server->loop);
  else
    uv_timer_start(&server->shutdown_timer, grace_over, SHUTDOWN_GRACE_MS, 0);
}

static volatile sig_atomic_t early_drain;
static void note_drain(int signum) {
  (void)signum;
  early_drain = 1;
}
void duet_note_early_drain(void) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = note_drain;
  sigemptyset(&action.sa_mask);
  sigaction(SIGUSR1, &action, NULL);
}
int duet__early_drain_noted(void) { return early_drain; }

/* Under --workers the supervisor drains them all (and starts none again):
 * a drain asked of one worker's admin API is passed up to it. */
void duet__server_admin_drain(void *data) {
  duet_server_t *server = data;
  pid_t parent = getppid();
  if (server->opt->worker_index > 0 && parent > 1 && kill(parent, SIGUSR1) == 0)
    return;
  duet__server_begin_drain(server, "admin API");
}

static void on_signal(uv_signal_t *handle, int signum) {
  duet_server_t *server = handle->data;
  if (signum == SIGHUP) {
    duet__tls_reload(&server->tls);
    DUET_INFO("SIGHUP: telling plugins to reopen their files");
    duet_event_t event = {"duet.reload", 0, NULL, 0};
    duet__plugins_emit(server->plugins, &event);
    return;
  }
  if (signum == SIGUSR1) {
    duet__server_begin_drain(server, "SIGUSR1");
    return;
  }
  if (server->shutting_down) {
    DUET_WARN("second signal: stopping now");
    uv_stop(&server->loop);
    return;
  }
  begin_shutdown(server, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* glibc keeps freed memory until asked: after a mass disconnect (100+ MB),
 * and after a burst of TLS handshakes, whose scratch memory leaves holes
 * between the connections that stay (~3 KiB per connection). Give it back
 * now and then, not per connection. And a flood that stopped still gets
 * the summary of the log lines it caused. */
static void housekeeping(uv_timer_t *timer) {
  duet_server_t *server = timer->data;
  server->churn_since_trim += duet__sessions_take_churn(&server->sessions);
  if (server->churn_since_trim >= 256) {
    server->churn_since_trim = 0;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
  }
  duet__log_flush_suppressed();
}

void duet__server_start_handles(duet_server_t *server) {
  uv_signal_t *signals[] = {&server->sigint, &server->sigterm, &server->sighup, &server->sigusr1};
  const int numbers[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1};
  for (size_t i = 0; i < 4; i++) {
    uv_signal_init(&server->loop, signals[i]);
    signals[i]->data = server;
    uv_signal_start(signals[i], on_signal, numbers[i]);
  }
  uv_timer_init(&server->loop, &server->shutdown_timer);
  uv_timer_init(&server->loop, &server->housekeeping_timer);
  uv_timer_init(&server->loop, &server->drain_timer);
  server->shutdown_timer.data = server->housekeeping_timer.data = server->drain_timer.data = server;
  uv_timer_start(&server->housekeeping_timer, housekeeping, 5000, 5000);
  server->handles_started = 1;
}

void duet__server_close_handles(duet_server_t *server) {
  if (!server->handles_started)
    return;
  server->handles_started = 0;
  uv_close((uv_handle_t *)&server->sigint, NULL);
  uv_close((uv_handle_t *)&server->sigterm, NULL);
  uv_close((uv_handle_t *)&server->sighup, NULL);
  uv_close((uv_handle_t *)&server->sigusr1, NULL);
  uv_close((uv_handle_t *)&server->shutdown_timer, NULL);
  uv_close((uv_handle_t *)&server->drain_timer, NULL);
  uv_close((uv_handle_t *)&server->housekeeping_timer, NULL);
}
