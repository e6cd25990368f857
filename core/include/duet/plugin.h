/*
 * duet plugin ABI.
 *
 * A plugin is a shared module (or, with -Dplugins=static, code linked into
 * duetd) that exports one entry function returning a duet_plugin_t. duetd
 * hands each plugin a duet_host_t table at init: everything a plugin can do
 * goes through that table, so a plugin links against nothing of duetd.
 *
 * Rules that keep the ABI stable:
 * - duet_host_t and duet_plugin_t start with abi_major, abi_minor,
 *   struct_size. duetd refuses a plugin whose abi_major differs from its own
 *   (naming both versions), accepts any abi_minor, and reads a field only
 *   when struct_size covers it. Fields are only ever appended; appending
 *   bumps abi_minor. Every other struct a plugin fills either carries its
 *   size too or says why it can never grow.
 * - Connections are opaque 64-bit ids. An id is never reused while duetd
 *   runs; using the id of a connection that is gone returns DUET_ENOCONN.
 * - Every pointer argument is borrowed for the duration of the call unless
 *   its comment says otherwise: whoever wants to keep data copies it.
 * - All calls happen on duetd's one event-loop thread. Host functions must
 *   not be called from other threads.
 * - Functions return 0 or a negative error code (DUET_E*).
 */
#ifndef DUET_PLUGIN_H
#define DUET_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Versions of ABI 1 (tests/abi/ keeps a plugin built against 1.3 working):
 * - 1.0: the first; close had no why argument (duetd reports
 *   DUET_CLOSE_SERVER for a 1.0 plugin's close).
 * - 1.1: close's why; host conn_info, ping, metric_register, metric_add,
 *   metric_set; duet_conn_info_t.
 * - 1.2: duet_conn_info_t.client_close_code.
 * - 1.3: duet_plugin_option_t.flag, value_name, flags;
 *   duet_plugin_t.option_size and commands; DUET_EIO.
 * - 1.4: host fd_watch, fd_watch_set, fd_watch_stop (a plugin's own
 *   sockets on duetd's loop), set_health, listen_port.
 * - 1.5: duet_plugin_t.stage (where the plugin belongs in the chain);
 *   host node_info; duet_node_info_t (node, worker, state folder).
 */
#define DUET_ABI_MAJOR 1
#define DUET_ABI_MINOR 6

/* Error codes returned by host functions. Values match negative errno. */
#define DUET_EINVAL (-22)   /* an argument is invalid */
#define DUET_ENOCONN (-107) /* the connection is gone (or never existed) */
#define DUET_ENOMEM (-12)   /* out of memory */
#define DUET_ENOBUFS (-105) /* the connection's send queue is full */
#define DUET_ENOENT (-2)    /* no such timer or option */
#define DUET_EIO (-5)       /* from init: the environment failed (a file, a timer) */

/* Log levels for duet_host_t.log. */
typedef enum duet_log_level {
  DUET_LOG_ERROR = 0,
  DUET_LOG_WARN = 1,
  DUET_LOG_INFO = 2,
  DUET_LOG_DEBUG = 3
} duet_log_level_t;

/* What on_message answers. */
typedef enum duet_verdict {
  DUET_PASS = 0,    /* not mine: offer the message to the next plugin */
  DUET_HANDLED = 1, /* done: no later plugin sees the message */
  DUET_REJECT = 2   /* refused: duetd answers the sender with reject's error */
} duet_verdict_t;

/* Why a connection ended, as given to on_close and to close. */
typedef enum duet_close_reason {
  DUET_CLOSE_CLIENT = 0,   /* the client closed or the socket failed */
  DUET_CLOSE_SERVER = 1,   /* closed by duetd or a plugin for another reason */
  DUET_CLOSE_SHUTDOWN = 2, /* duetd is shutting down */
  DUET_CLOSE_TIMEOUT = 3,  /* no sign of life (keepalive) or too slow to start */
  DUET_CLOSE_LIMIT = 4,    /* a resource limit: queue, rate, connections */
  DUET_CLOSE_TAKEOVER = 5  /* a newer connection took its id */
} duet_close_reason_t;

/*
 * Where a plugin belongs in the chain (since 1.5). duetd offers each
 * message, connection and event to the plugins in chain order: by stage,
 * and in load order within a stage (the bundled plugins, then --plugin in
 * the order given, then --plugin-dir). An operator may move a plugin to
 * another stage with --plugin-stage NAME=STAGE. The values leave gaps so
 * that stages can be added between them without renumbering.
 */
typedef enum duet_stage {
  /* Not said (or a plugin built before 1.5): the plugin stays where it was
   * loaded, in the stage of the plugin loaded just before it. */
  DUET_STAGE_UNSET = 0,
  DUET_STAGE_TRANSPORT = 100, /* connection upkeep, sees everything first: keepalive */
  DUET_STAGE_ADMISSION = 200, /* may refuse a client before anything acts on it: auth, allow-lists */
  DUET_STAGE_ROUTING = 300,   /* owns the call: pairing */
  DUET_STAGE_OBSERVER = 400   /* acts on what the others did: ice-servers, audit-log */
} duet_stage_t;

/* Kinds of metric a plugin can register for /metrics. */
typedef enum duet_metric_type {
  DUET_METRIC_COUNTER = 0, /* only goes up */
  DUET_METRIC_GAUGE = 1    /* goes up and down */
} duet_metric_type_t;

/* Facts about a connection, filled by duet_host_t.conn_info. The caller
 * sets struct_size to sizeof(duet_conn_info_t); duetd fills the fields that
 * fit, so an older plugin's smaller struct stays valid. */
typedef struct duet_conn_info {
  uint32_t struct_size;
  uint16_t remote_port;
  char remote_addr[46];       /* numeric IPv4 or IPv6, NUL-terminated */
  char user_agent[256];       /* of the WebSocket upgrade request, may be truncated, "" if none */
  char tls_version[16];       /* "TLSv1.3", or "" without TLS */
  uint64_t connected_unix_ms; /* wall-clock time the WebSocket was accepted */
  uint64_t idle_ms;           /* since the last frame of any kind (text, ping, pong) from the client */
  uint16_t client_close_code; /* the code of the client's close frame; 0 if it sent none (yet) */
} duet_conn_info_t;

/*
 * One decoded signaling message: a JSON object in UTF-8, already validated.
 * type is the name of the object's first member other than "remote"
 * (for {"sdp":{...},"remote":"bob"} it is "sdp"). json is the whole message
 * as received. Both are borrowed for the on_message call; neither is
 * NUL-terminated. Use duet_host_t.msg_string to read members without parsing
 * the JSON again.
 */
typedef struct duet_msg {
  const char *type;
  size_t type_len;
  const char *json;
  size_t json_len;
} duet_msg_t;

/* Filled by on_message when it returns DUET_REJECT. code is a short
 * machine-readable token ("not-paired"), message a sentence for humans. Both
 * must stay valid until on_message returns (string literals are typical).
 * This struct never grows, so it carries no size: a client's error is a
 * code and a message, and nothing else reaches the client. */
typedef struct duet_reject {
  const char *code;
  const char *message;
} duet_reject_t;

/* An event one plugin emits and every plugin with on_event receives
 * (including the emitter). name and json (a JSON object, may be NULL) are
 * borrowed for the call. This struct never grows, so it carries no size:
 * whatever an event has to say beyond its name and connection goes in
 * json, which every version of duetd passes through unread. */
typedef struct duet_event {
  const char *name;
  uint64_t conn;
  const char *json;
  size_t json_len;
} duet_event_t;

/* Bits of duet_plugin_option_t.flags. */
#define DUET_OPTION_REPEATABLE 1u /* the shorthand flag may repeat; values are joined with ',' */
#define DUET_OPTION_FILE 2u       /* the shorthand flag's value must name an existing file */

/*
 * One option a plugin accepts through --plugin-opt NAME.KEY=VALUE. Options
 * form an array ended by an entry with key NULL; its stride is
 * duet_plugin_t.option_size (an ABI 1.0-1.2 plugin's entries end at flag).
 */
typedef struct duet_plugin_option {
  const char *key;
  const char *default_value; /* what config_get returns when the option is not given */
  const char *help;
  /* Since 1.3. A top-level duetd flag that sets this option, without the
   * dashes: "turn-ttl" makes "--turn-ttl 600" mean --plugin-opt
   * NAME.turn-ttl=600. NULL for none. duetd offers the flags of its bundled
   * plugins only; a flag another option of duetd already has is ignored. */
  const char *flag;
  const char *value_name; /* the value in --help ("FILE", "URL"); NULL: "VALUE" */
  uint32_t flags;         /* DUET_OPTION_* bits for the flag */
} duet_plugin_option_t;

/* How a command writes: len bytes of text to stream (out or err of run). */
typedef void (*duet_write_fn)(void *stream, const char *text, size_t len);

/*
 * A subcommand a plugin offers on duetd's command line: "duetd NAME ARGS"
 * runs it instead of the server. Offered for bundled plugins only.
 */
typedef struct duet_plugin_command {
  uint32_t struct_size; /* sizeof(duet_plugin_command_t) */
  const char *name;     /* [a-z0-9-]+, e.g. "token" */
  const char *help;     /* one line for duetd --help */
  /* Runs the command; argv[0] is its name, argv[argc] is NULL. No init has
   * run and no host table exists: the command stands alone. Output goes
   * through write(out, ...), messages through write(err, ...). Returns the
   * process exit code: 0, 1 for a failure, 2 for a usage error. */
  int (*run)(int argc, const char *const *argv, duet_write_fn write, void *out, void *err);
} duet_plugin_command_t;

/* Where this duetd runs, filled by duet_host_t.node_info (since 1.5). The
 * caller sets struct_size to sizeof(duet_node_info_t); duetd fills the
 * fields that fit. */
typedef struct duet_node_info {
  uint32_t struct_size;
  uint32_t worker_index; /* 1..worker_count in a worker of --workers; 0 in a single process */
  uint32_t worker_count; /* the workers of this machine's supervisor; 1 in a single process */
  /* This process's name among the nodes of a cluster, NUL-terminated:
   * --node-id, else HOST:PORT (the main listener's port once bound, the
   * configured one before); "-wK" is appended in worker K. */
  char node_id[256];
  /* The state folder (--state-dir, else duetd's default), NUL-terminated:
   * where a plugin keeps files that must outlive a restart. It may not
   * exist yet (duetd makes it only when it needs it). */
  char state_dir[4096];
} duet_node_info_t;

/* Opaque handle naming the calling plugin in host calls. */
typedef struct duet_host_ctx duet_host_ctx_t;

typedef void (*duet_timer_cb)(void *userdata);

/* Bits for fd watches (since 1.4): what to wait for, and what happened. */
#define DUET_FD_READ 1u
#define DUET_FD_WRITE 2u
#define DUET_FD_ERROR 4u /* only in ready: the descriptor failed (read or write it to learn how) */
typedef void (*duet_fd_cb)(void *userdata, uint32_t ready);

/*
 * What duetd offers a plugin. Handed to init; valid until shutdown returns.
 * Every function takes the plugin's own ctx first.
 */
typedef struct duet_host {
  uint16_t abi_major;
  uint16_t abi_minor;
  uint32_t struct_size;

  /* Queues one text frame to conn. json (len bytes, need not be
   * NUL-terminated) is copied. Returns 0; DUET_ENOCONN if conn is gone or
   * closing; DUET_EINVAL if json is NULL; DUET_ENOBUFS if its queue or the
   * queues of all connections together are full (past its own limit duetd
   * closes conn); DUET_ENOMEM. */
  int (*send)(duet_host_ctx_t *ctx, uint64_t conn, const char *json, size_t len);

  /* Sends {"error":{"code":code,"message":message}} to conn; both are
   * escaped and copied. Same returns as send (DUET_EINVAL: code or message
   * is NULL). */
  int (*send_error)(duet_host_ctx_t *ctx, uint64_t conn, const char *code, const char *message);

  /* Closes conn after its queued frames are sent, with a WebSocket close
   * code (1000-4999) and a reason (copied, at most 123 bytes; may be NULL);
   * why is what on_close will report to every plugin. From its return on,
   * sends to conn fail with DUET_ENOCONN. on_close never runs inside close:
   * every plugin's on_close follows on a later turn of the event loop.
   * Returns 0; DUET_ENOCONN if conn is gone or already closing; DUET_EINVAL
   * for a ws_code outside 1000-4999 or an unknown why. */
  int (*close)(duet_host_ctx_t *ctx, uint64_t conn, int ws_code, const char *reason, duet_close_reason_t why);

  /* Starts a timer: cb(userdata) runs after timeout_ms, then every repeat_ms
   * if repeat_ms > 0. Returns a timer id (> 0, never reused), DUET_EINVAL if
   * cb is NULL, or DUET_ENOMEM. A one-shot timer is freed by duetd after cb
   * returns. Timers still running at shutdown are stopped by duetd. */
  int64_t (*timer_start)(duet_host_ctx_t *ctx, uint64_t timeout_ms, uint64_t repeat_ms, duet_timer_cb cb,
                         void *userdata);
  /* Stops and frees a timer; safe from inside its own callback. Returns 0, or
   * DUET_ENOENT if it is not a running timer of this plugin (a one-shot
   * timer that fired is gone). */
  int (*timer_stop)(duet_host_ctx_t *ctx, int64_t timer_id);

  /* Delivers an event to every plugin's on_event, synchronously and in load
   * order, the emitter included. May be called from on_event: the nested
   * event reaches every plugin before emit returns, so before the outer
   * event reaches the plugins after the current one; a plugin must not
   * answer its own event with itself forever. Returns 0, or DUET_EINVAL if
   * event or its name is NULL. */
  int (*emit)(duet_host_ctx_t *ctx, const duet_event_t *event);

  /* Per-connection data: one pointer per plugin per connection, NULL until
   * set. duetd never frees it: free it in on_close. conn_set_data returns 0
   * or DUET_ENOCONN; conn_get_data returns NULL for a connection that is
   * gone. Both work for a closing connection until on_close returns. */
  int (*conn_set_data)(duet_host_ctx_t *ctx, uint64_t conn, void *data);
  void *(*conn_get_data)(duet_host_ctx_t *ctx, uint64_t conn);

  /* The value of --plugin-opt NAME.KEY=VALUE (the last one given), or the
   * default the plugin declared, or NULL for a key it did not declare. The
   * string lives until shutdown returns. */
  const char *(*config_get)(duet_host_ctx_t *ctx, const char *key);

  /* Writes one line to duetd's log, prefixed with the plugin's name. */
  void (*log)(duet_host_ctx_t *ctx, duet_log_level_t level, const char *message);

  /* Reads a string member of the message being handled, by JSON Pointer
   * (RFC 6901, e.g. "/open/local"). On success *out points into duetd's
   * decoded copy (valid until on_message returns; not NUL-terminated,
   * *out_len bytes) and 0 is returned; DUET_ENOENT if absent, DUET_EINVAL if
   * not a string, if out or out_len is NULL, or if msg is not the message
   * being handled. Only valid inside on_message, with the msg given to it. */
  int (*msg_string)(duet_host_ctx_t *ctx, const duet_msg_t *msg, const char *pointer, const char **out,
                    size_t *out_len);

  /* Fills info (see duet_conn_info_t); works for a closing connection until
   * on_close returns. Returns 0, DUET_ENOCONN, or DUET_EINVAL if info is
   * NULL or its struct_size does not reach idle_ms. */
  int (*conn_info)(duet_host_ctx_t *ctx, uint64_t conn, duet_conn_info_t *info);

  /* Sends a WebSocket ping frame (RFC 6455) to conn; the client's pong
   * resets its idle time. Returns 0, or DUET_ENOCONN if conn is gone or
   * closing. */
  int (*ping)(duet_host_ctx_t *ctx, uint64_t conn);

  /* Registers a metric shown on /metrics as duet_NAME with help text
   * (both copied; name: [a-z_][a-z0-9_]*). Registering a name twice
   * returns the same id. Returns an id > 0, DUET_EINVAL for a bad name, a
   * name registered with another type or one of duetd's own series, or
   * DUET_ENOMEM. */
  int64_t (*metric_register)(duet_host_ctx_t *ctx, const char *name, const char *help, duet_metric_type_t type);
  /* Adds delta to a metric. Returns 0, DUET_ENOENT for an unknown id, or
   * DUET_EINVAL for a negative delta to a counter. */
  int (*metric_add)(duet_host_ctx_t *ctx, int64_t id, int64_t delta);
  /* Sets a gauge. Returns 0, DUET_ENOENT, or DUET_EINVAL for a counter. */
  int (*metric_set)(duet_host_ctx_t *ctx, int64_t id, int64_t value);

  /* Since 1.4. Watches one of the plugin's own descriptors (a socket to a
   * database, say) on duetd's loop: cb(userdata, ready) runs on the loop
   * while fd is ready for what events asks (DUET_FD_READ, DUET_FD_WRITE;
   * level-triggered, so read until EAGAIN or expect another call).
   * One watch per fd. The fd stays the plugin's: stop the watch before
   * closing it. Returns a watch id (> 0, never reused), DUET_EINVAL for a
   * negative fd, a NULL cb, unknown bits or an fd already watched, or
   * DUET_ENOMEM. Watches still running at shutdown are stopped by duetd. */
  int64_t (*fd_watch)(duet_host_ctx_t *ctx, int fd, uint32_t events, duet_fd_cb cb, void *userdata);
  /* Changes what a watch waits for; 0 pauses it. Returns 0, DUET_ENOENT
   * for a watch that is not this plugin's, DUET_EINVAL for unknown bits. */
  int (*fd_watch_set)(duet_host_ctx_t *ctx, int64_t watch_id, uint32_t events);
  /* Stops and frees a watch; safe from inside its callback. Returns 0 or
   * DUET_ENOENT. */
  int (*fd_watch_stop)(duet_host_ctx_t *ctx, int64_t watch_id);

  /* Since 1.4. What GET /healthz says of this plugin: healthy (degraded 0)
   * or degraded, with a short reason (copied, at most 127 bytes; may be
   * NULL). While any plugin is degraded /healthz answers 200 with
   * "status":"degraded" and the reasons: duetd still serves, but not all
   * of it. Returns 0. */
  int (*set_health)(duet_host_ctx_t *ctx, int degraded, const char *reason);

  /* Since 1.4. The TCP port of the main listener: the one bound once duetd
   * listens (after init, from the first loop turn on), the configured one
   * before. */
  int (*listen_port)(duet_host_ctx_t *ctx);

  /* Since 1.5. Fills info (see duet_node_info_t): the worker and the node
   * this plugin runs in, and the state folder. Returns 0, or DUET_EINVAL if
   * info is NULL or its struct_size does not reach state_dir. */
  int (*node_info)(duet_host_ctx_t *ctx, duet_node_info_t *info);

  /* Since 1.6. Holds duetd's exit (delta +1) or lets it go (delta -1), for
   * work under way that must end before the process does: a decision on
   * its way to a store other processes share (the cluster's Redis), which
   * the connections' last closes started. Once its connections are closed
   * (at shutdown, or when a drain's last connection has gone) duetd waits
   * until no plugin holds it, for at most 2 s. Returns 0, or DUET_EINVAL for
   * another delta or one that would take this plugin's holds below 0. */
  int (*hold_exit)(duet_host_ctx_t *ctx, int delta);
} duet_host_t;

/*
 * Events duetd itself emits (plugins add their own, named "plugin.what"):
 * - "duet.rejected": conn was sent an error; json {"code":"..."}.
 * - "duet.reload": SIGHUP; conn 0, no json. Reopen files (logrotate).
 */

/*
 * What a plugin exports. The struct must stay valid while the plugin is
 * loaded (a static const object is typical).
 */
typedef struct duet_plugin {
  uint16_t abi_major;   /* DUET_ABI_MAJOR the plugin was built with */
  uint16_t abi_minor;   /* DUET_ABI_MINOR the plugin was built with */
  uint32_t struct_size; /* sizeof(duet_plugin_t) the plugin was built with */

  /* Required. name: [a-z0-9-]+, unique among loaded plugins. */
  const char *name;
  const char *version;
  const char *description;

  /* Required. Called once, before any connection. host and ctx stay valid
   * until shutdown returns. Store the plugin's state in *state. Return 0, or
   * a negative error to make duetd refuse to start: DUET_EINVAL for a bad
   * option value (duetd exits with the usage-error code 2), others (DUET_EIO,
   * DUET_ENOMEM) for failures of the environment (exit code 1). Log the
   * reason first. */
  int (*init)(const duet_host_t *host, duet_host_ctx_t *ctx, void **state);
  /* Required. Called once at exit, after every on_close. */
  void (*shutdown)(void *state);

  /* Optional (may be NULL). A WebSocket connection was accepted. */
  void (*on_open)(void *state, uint64_t conn);
  /* Optional. A message arrived on conn. See duet_verdict_t. */
  duet_verdict_t (*on_message)(void *state, uint64_t conn, const duet_msg_t *msg, duet_reject_t *reject);
  /* Optional. conn is gone; sends to it fail from now on. Sends to other
   * connections work. Runs once per connection and plugin, on a loop turn
   * after the close began (never inside the host's close). With DUET_CLOSE_SHUTDOWN every plugin is told of
   * every connection first and only then are they closed, so sends to conn
   * (and to all others) still work during this call. */
  void (*on_close)(void *state, uint64_t conn, duet_close_reason_t reason);
  /* Optional. An event emitted by a plugin. */
  void (*on_event)(void *state, const duet_event_t *event);

  /* Optional. Options the plugin accepts, ended by an entry with key NULL.
   * duetd rejects --plugin-opt keys not listed here. */
  const duet_plugin_option_t *options;

  /* Since 1.3. sizeof(duet_plugin_option_t) the plugin was built with: the
   * stride of options, which lets duet_plugin_option_t grow. */
  uint32_t option_size;
  /* Since 1.3. Optional: the commands the plugin offers, a NULL-terminated
   * array of pointers (see duet_plugin_command_t). */
  const duet_plugin_command_t *const *commands;
  /* Since 1.5. Where the plugin belongs in the chain (see duet_stage_t);
   * DUET_STAGE_UNSET keeps the place it was loaded in. */
  duet_stage_t stage;
} duet_plugin_t;

/* A stable lowercase name for a stage ("admission", ...; "unset"). */
static inline const char *duet_stage_name(duet_stage_t stage) {
  switch (stage) {
  case DUET_STAGE_UNSET:
    return "unset";
  case DUET_STAGE_TRANSPORT:
    return "transport";
  case DUET_STAGE_ADMISSION:
    return "admission";
  case DUET_STAGE_ROUTING:
    return "routing";
  case DUET_STAGE_OBSERVER:
    return "observer";
  }
  return "unknown";
}

/* A stable lowercase name for a close reason ("client", "timeout", ...). */
static inline const char *duet_close_reason_name(duet_close_reason_t why) {
  switch (why) {
  case DUET_CLOSE_CLIENT:
    return "client";
  case DUET_CLOSE_SERVER:
    return "server";
  case DUET_CLOSE_SHUTDOWN:
    return "shutdown";
  case DUET_CLOSE_TIMEOUT:
    return "timeout";
  case DUET_CLOSE_LIMIT:
    return "limit";
  case DUET_CLOSE_TAKEOVER:
    return "takeover";
  }
  return "unknown";
}

/* The entry symbol a shared plugin exports (see DUET_PLUGIN_ENTRY_SYMBOL).
 * The _v1 suffix is the ABI major: a plugin for another major has another
 * symbol, and duetd says which it found. */
typedef const duet_plugin_t *(*duet_plugin_entry_fn)(void);
#define DUET_PLUGIN_ENTRY_SYMBOL "duet_plugin_entry_v1"

#if defined(_WIN32)
#define DUET_PLUGIN_EXPORT __declspec(dllexport)
#else
#define DUET_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
}
#endif

#endif /* DUET_PLUGIN_H */
