/* The server: one libuv loop carrying libwebsockets (TLS, HTTP, WebSocket),
 * the connection table and the plugin chain. */
#ifndef DUET_SERVER_H
#define DUET_SERVER_H

#include <stddef.h>

#include <uv.h>

#include "conn.h"
#include "ip_table.h"
#include "listener.h"
#include "metrics.h"
#include "options.h"
#include "plugins.h"

struct lws_context;
struct lws_vhost;

typedef struct duet_server_mount {
  const char *url; /* "" for the web root, else "/extra" */
  size_t url_len;
  char *root;      /* realpath of the folder */
} duet_server_mount_t;

struct duet_server {
  const duet_options_t *opt;
  uv_loop_t loop;
  struct lws_context *lws;
  struct lws_vhost *vhost;
  duet_listener_t listener;
  duet_listener_t admin_listener; /* --admin-listen: health and metrics only */
  duet_listener_t redirect_listener; /* --http-redirect-port: redirects and ACME only */
  int public_port;                   /* the HTTPS port redirects point to */
  struct ssl_ctx_st *ssl_ctx;        /* the vhost's, for certificate reloads */
  char cert_path[4096], key_path[4096];
  char hsts_value[32];
  duet_conns_t conns;
  duet_plugins_t *plugins;
  duet_server_mount_t *mounts; /* longest url first */
  size_t mount_count;
  uv_signal_t sigint;
  uv_signal_t sigterm;
  uv_signal_t sighup;
  uv_timer_t shutdown_timer;
  uv_timer_t open_timer;
  uv_timer_t closing_timer;  /* tells plugins of closes started this turn */
  uv_timer_t housekeeping_timer; /* returns freed memory after much churn; reports suppressed log lines */
  size_t churn_since_trim;   /* connections opened or closed since the last trim */
  uint64_t *closing_ids;
  size_t closing_count, closing_cap;
  duet_conn_t *waiting_head; /* connections yet to send an accepted message, oldest first */
  duet_conn_t *waiting_tail;
  duet_ip_table_t ips;       /* WebSocket connections per client address */
  duet_metrics_t metrics;
  uint64_t started_ms;
  size_t open_files_limit;
  int shutting_down;
  int tearing_down; /* the main loop run is over */
  int handles_started; /* sigint, sigterm, shutdown_timer need closing */
};

/* Fills live with the values /metrics shows that are not counters of its own. */
void duet__server_metrics_live(const duet_server_t *server, duet_metrics_live_t *live);

/* Static files: the HTTP side of the vhost (http_static.c). */
struct lws;
int duet__http_static_callback(struct lws *wsi, int reason, void *user, void *in, size_t len);
size_t duet__http_static_session_size(void);

#endif
