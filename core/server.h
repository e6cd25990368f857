/* The server's state, shared by server.c (start-up and teardown) and
 * server_lifecycle.c (signals, drain, shutdown, housekeeping). Private to
 * the core: plugins see none of it. */
#ifndef DUET_SERVER_H
#define DUET_SERVER_H

/* libwebsockets.h does not include uv.h, yet its libuv parts need it first. */
#include <libwebsockets.h>
#include <uv.h>

#include "admin_api.h"
#include "admin_http.h"
#include "host_table.h"
#include "http_static.h"
#include "listener.h"
#include "metrics.h"
#include "mounts.h"
#include "options.h"
#include "plugins.h"
#include "process_metrics.h"
#include "session.h"
#include "tls_config.h"

typedef struct duet_server {
  const duet_options_t *opt;
  uv_loop_t loop;
  struct lws_context *lws;
  struct lws_vhost *vhost;
  struct lws_protocols protocols[3];
  struct lws_protocol_vhost_options headers[6];
  char hsts_value[32];
  duet_listener_t listener;
  duet_listener_t admin_listener;    /* --admin-listen: health and metrics only */
  duet_listener_t redirect_listener; /* --http-redirect-port: redirects and ACME only */
  duet_tls_t tls;
  duet_mounts_t mounts;
  duet_http_t http;
  duet_admin_http_t admin;
  duet_admin_api_t admin_api; /* --admin-token-file */
  char node_id[300];
  duet_plugins_t *plugins;
  duet_host_state_t host; /* what the plugins' host calls work on */
  duet_sessions_t sessions;
  duet_metrics_t metrics;
  uv_signal_t sigint, sigterm, sighup, sigusr1;
  uv_timer_t shutdown_timer;
  uv_timer_t drain_timer;         /* a drain's deadline (--drain-timeout), or its end once the last connection went */
  uv_timer_t housekeeping_timer;  /* returns freed memory after much churn; reports suppressed log lines */
  size_t churn_since_trim;        /* connections opened or closed since the last trim */
  duet_process_metrics_t process; /* its series on /metrics; started_ms and the open-files limit */
  int shutting_down;
  int draining; /* SIGUSR1: no new connections, exit once the last has gone */
  int handles_started;
  int port; /* the main listener's, once bound */
} duet_server_t;

/* Signal handlers and the timers, started once the listeners are open;
 * closing is safe whether or not they were started. */
void duet__server_start_handles(duet_server_t *server);
void duet__server_close_handles(duet_server_t *server);

/* SIGUSR1 or the admin API: no new connections, exit once the last has gone. */
void duet__server_begin_drain(duet_server_t *server, const char *why);
/* The admin API's drain: under --workers it is the supervisor's to do. */
void duet__server_admin_drain(void *server);
/* The sessions' callback once the last connection has closed. */
void duet__server_drained(void *server);
/* The host's callback once no plugin holds the exit (hold_exit). */
void duet__server_exit_released(void *server);

#endif
