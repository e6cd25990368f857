/* duetd's settings, filled by the command line (cli/options.cpp) and read by
 * the C core. Strings are owned by the CLI layer and outlive the server. */
#ifndef DUET_OPTIONS_H
#define DUET_OPTIONS_H

#include <stddef.h>

#include "duet/plugin.h"

typedef struct duet_mount {
  const char *url; /* "/extra": starts with '/', no trailing slash ("" for the root mount) */
  const char *dir; /* folder served there */
} duet_mount_t;

typedef struct duet_plugin_opt {
  const char *plugin; /* a plugin's name */
  const char *key;    /* "takeover" */
  const char *value;  /* "replace" */
} duet_plugin_opt_t;

typedef struct duet_plugin_stage {
  const char *plugin; /* "allowlist" */
  duet_stage_t stage; /* DUET_STAGE_ADMISSION */
} duet_plugin_stage_t;

typedef struct duet_options {
  const char *address; /* NULL: every address, IPv4 and IPv6 */
  int port;            /* 0: any free port */
  int tls;             /* 0 with --no-tls */
  const char *cert;
  const char *key;
  const char *state_dir;
  const char *web_root;
  const duet_mount_t *mounts; /* extra mounts besides the web root */
  size_t mount_count;
  size_t max_message_bytes;
  size_t max_queued_bytes;
  size_t max_queued_bytes_total;    /* all connections' send queues together */
  size_t max_connections;           /* WebSocket connections in all */
  size_t max_connections_per_ip;    /* WebSocket connections from one address */
  unsigned max_messages_per_second; /* per connection; bursts of twice that */
  double open_timeout_s;            /* to the first accepted message */
  double drain_timeout_s;           /* a drain (SIGUSR1) waits this long for connections to go */
  unsigned http_timeout_s;          /* TLS handshake and HTTP headers (slowloris) */
  unsigned max_header_bytes;        /* HTTP request headers */
  int health;                       /* serve GET /healthz */
  int metrics;                      /* serve GET /metrics */
  const char *admin_address;        /* NULL: health and metrics on the main port */
  const char *admin_token;          /* NULL: no admin API; else its bearer token (needs admin_address) */
  int admin_port;
  int tls_min_13;                   /* --tls-min 1.3: no TLS 1.2 */
  unsigned hsts_s;                  /* Strict-Transport-Security max-age; 0: none */
  int redirect_port;                /* plain-HTTP port that redirects to HTTPS; 0: none */
  const char *acme_webroot;         /* served at /.well-known/acme-challenge/ on the redirect port */
  const char *const *allow_origins; /* WebSocket Origins allowed besides the server's own */
  size_t allow_origin_count;
  int allow_any_origin;
  const char *const *plugins; /* names of bundled plugins or paths, in load order */
  size_t plugin_count;
  const char *const *plugin_dirs; /* every *.so in these is loaded too */
  size_t plugin_dir_count;
  const duet_plugin_opt_t *plugin_opts;
  size_t plugin_opt_count;
  const duet_plugin_stage_t *plugin_stages; /* --plugin-stage: moves a plugin to another stage of the chain */
  size_t plugin_stage_count;
  int list_plugins;      /* print loaded plugins and exit */
  unsigned workers;      /* --workers: run this many worker processes under a supervisor; 0: one process */
  unsigned worker_index; /* 1..N in a worker (set by the supervisor), else 0 */
  unsigned worker_count; /* N in a worker (set by the supervisor), else 0 */
  const char *node_id;   /* --node-id; NULL: HOST:PORT (node_identity.c) */
  duet_log_level_t log_level;
} duet_options_t;

#ifdef __cplusplus
extern "C" {
#endif

/* Runs duetd with these options until SIGINT/SIGTERM (server.c). Returns 0
 * after a clean shutdown (or --list-plugins), DUET_EINVAL for a usage error
 * found late (an unknown plugin or plugin option, a value a plugin
 * refused), another DUET_E* code when it could not start. */
int duet_server_run(const duet_options_t *opt);

/* SIGUSR1 (drain) ends a process by default: from the first thing main
 * does until the loop watches it, it is only noted (server.c), and the
 * server or the supervisor drains once ready if it came. */
void duet_note_early_drain(void);
int duet__early_drain_noted(void);

/* Where bundled files are looked for when no option says (paths.c). */
const char *duet__paths_default_web_root(void);
const char *duet__paths_default_state_dir(char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
