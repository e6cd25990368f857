/* The host table: every function a plugin may call, checked against the
 * connection table by id (a plugin never holds a pointer of ours). */
#include "host_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "host_ctx.h"
#include "message.h"
#include "metrics.h"
#include "node_identity.h"
#include "plugin_module.h"
#include "plugins.h"
#include "session.h"

typedef struct host_timer {
  uv_timer_t handle;
  int64_t id;
  duet_host_ctx_t *owner;
  duet_host_state_t *host;
  duet_timer_cb cb;
  void *userdata;
  struct host_timer *prev, *next;
} host_timer_t;

typedef struct host_fd_watch {
  uv_poll_t handle;
  int64_t id;
  int fd;
  duet_host_ctx_t *owner;
  duet_host_state_t *host;
  duet_fd_cb cb;
  void *userdata;
  struct host_fd_watch *prev, *next;
} host_fd_watch_t;

static const duet_host_env_t *env_of(const duet_host_ctx_t *ctx) { return &ctx->host->env; }

static duet_conn_t *live_conn(duet_host_ctx_t *ctx, uint64_t id) {
  duet_conn_t *conn = duet__conns_get(env_of(ctx)->conns, id);
  /* At shutdown every plugin hears of every connection before any closes,
   * so sends still work then (see on_close in plugin.h). */
  return conn && !conn->closing && (!duet__session_plugins_told(conn) || env_of(ctx)->conns->draining) ? conn : NULL;
}

static int host_send(duet_host_ctx_t *ctx, uint64_t id, const char *json, size_t len) {
  duet_conn_t *conn = live_conn(ctx, id);
  if (!conn)
    return DUET_ENOCONN;
  if (!json)
    return DUET_EINVAL;
  return duet__conn_send(env_of(ctx)->conns, conn, json, len);
}

static int host_send_error(duet_host_ctx_t *ctx, uint64_t id, const char *code, const char *message) {
  duet_conn_t *conn = live_conn(ctx, id);
  if (!conn)
    return DUET_ENOCONN;
  if (!code || !message)
    return DUET_EINVAL;
  return duet__conn_send_error(env_of(ctx)->conns, conn, code, message);
}

static int host_close(duet_host_ctx_t *ctx, uint64_t id, int ws_code, const char *reason, duet_close_reason_t why) {
  duet_conn_t *conn = live_conn(ctx, id);
  if (!conn)
    return DUET_ENOCONN;
  /* ABI 1.0 declared close without why: whatever that register holds is noise. */
  if (ctx->desc->abi_minor == 0)
    why = DUET_CLOSE_SERVER;
  if (ws_code < 1000 || ws_code > 4999 || why < DUET_CLOSE_CLIENT || why > DUET_CLOSE_TAKEOVER)
    return DUET_EINVAL;
  duet__conn_close(conn, ws_code, reason, why);
  return 0;
}

static int host_conn_info(duet_host_ctx_t *ctx, uint64_t id, duet_conn_info_t *info) {
  duet_conn_t *conn = duet__conns_get(env_of(ctx)->conns, id);
  if (!conn)
    return DUET_ENOCONN;
  if (!info || info->struct_size < offsetof(duet_conn_info_t, idle_ms) + sizeof info->idle_ms)
    return DUET_EINVAL;
  duet__session_describe(conn, uv_now(env_of(ctx)->loop), info);
  return 0;
}

static int host_ping(duet_host_ctx_t *ctx, uint64_t id) {
  duet_conn_t *conn = live_conn(ctx, id);
  if (!conn)
    return DUET_ENOCONN;
  duet__conn_ping(conn);
  return 0;
}

static int64_t host_metric_register(duet_host_ctx_t *ctx, const char *name, const char *help, duet_metric_type_t type) {
  return duet__metrics_register(env_of(ctx)->metrics, name, help, type);
}

static int host_metric_add(duet_host_ctx_t *ctx, int64_t id, int64_t delta) {
  return duet__metrics_add(env_of(ctx)->metrics, id, delta);
}

static int host_metric_set(duet_host_ctx_t *ctx, int64_t id, int64_t value) {
  return duet__metrics_set(env_of(ctx)->metrics, id, value);
}

static void timer_closed(uv_handle_t *handle) { free(handle->data); }

static void timer_free(duet_host_state_t *host, host_timer_t *t) {
  if (t->prev)
    t->prev->next = t->next;
  else
    host->timers = t->next;
  if (t->next)
    t->next->prev = t->prev;
  uv_timer_stop(&t->handle);
  uv_close((uv_handle_t *)&t->handle, timer_closed);
}

static void timer_fired(uv_timer_t *handle) {
  host_timer_t *t = handle->data;
  duet_host_state_t *host = t->host;
  int repeating = uv_timer_get_repeat(handle) > 0;
  t->cb(t->userdata);
  /* A one-shot timer is spent: free it unless its callback already did. */
  if (!repeating) {
    for (host_timer_t *it = host->timers; it; it = it->next)
      if (it == t) {
        timer_free(host, t);
        break;
      }
  }
}

static int64_t host_timer_start(duet_host_ctx_t *ctx, uint64_t timeout_ms, uint64_t repeat_ms, duet_timer_cb cb,
                                void *userdata) {
  if (!cb)
    return DUET_EINVAL;
  duet_host_state_t *host = ctx->host;
  host_timer_t *t = calloc(1, sizeof *t);
  if (!t)
    return DUET_ENOMEM;
  uv_timer_init(host->env.loop, &t->handle);
  t->handle.data = t;
  t->id = ++host->next_timer_id;
  t->owner = ctx;
  t->host = host;
  t->cb = cb;
  t->userdata = userdata;
  t->next = host->timers;
  if (t->next)
    t->next->prev = t;
  host->timers = t;
  uv_timer_start(&t->handle, timer_fired, timeout_ms, repeat_ms);
  return t->id;
}

static int host_timer_stop(duet_host_ctx_t *ctx, int64_t id) {
  for (host_timer_t *t = ctx->host->timers; t; t = t->next)
    if (t->id == id && t->owner == ctx) {
      timer_free(ctx->host, t);
      return 0;
    }
  return DUET_ENOENT;
}

static int host_emit(duet_host_ctx_t *ctx, const duet_event_t *event) {
  if (!event || !event->name)
    return DUET_EINVAL;
  duet_host_state_t *host = ctx->host;
  if (host->collect && strncmp(event->name, "admin.", 6) == 0) {
    host->collect(host->collect_data, ctx->name, event);
    return 0;
  }
  duet__plugins_emit(ctx->plugins, event);
  return 0;
}

static int host_conn_set_data(duet_host_ctx_t *ctx, uint64_t id, void *data) {
  duet_conn_t *conn = duet__conns_get(env_of(ctx)->conns, id);
  if (!conn)
    return DUET_ENOCONN;
  duet__conn_set_plugin_data(conn, ctx->index, data);
  return 0;
}

static void *host_conn_get_data(duet_host_ctx_t *ctx, uint64_t id) {
  duet_conn_t *conn = duet__conns_get(env_of(ctx)->conns, id);
  return conn ? duet__conn_plugin_data(conn, ctx->index) : NULL;
}

static const char *host_config_get(duet_host_ctx_t *ctx, const char *key) {
  if (!key)
    return NULL;
  const duet_options_t *opt = env_of(ctx)->opt;
  for (size_t i = opt->plugin_opt_count; i > 0; i--) {
    const duet_plugin_opt_t *o = &opt->plugin_opts[i - 1]; /* the last one given wins */
    if (strcmp(o->plugin, ctx->name) == 0 && strcmp(o->key, key) == 0)
      return o->value;
  }
  duet_plugin_option_t o;
  for (size_t i = 0; duet__plugin_module_option(ctx->desc, i, &o); i++)
    if (strcmp(o.key, key) == 0)
      return o.default_value;
  return NULL;
}

static void host_log(duet_host_ctx_t *ctx, duet_log_level_t level, const char *message) {
  if (level > DUET_LOG_DEBUG)
    level = DUET_LOG_DEBUG;
  duet_log_limit_t *limit = level == DUET_LOG_ERROR ? &ctx->error_limit : &ctx->log_limit;
  if (!limit->kind) {
    limit->kind = ctx->name;
    limit->burst = 10;
  }
  duet__log_limited(limit, level, "%s: %s", ctx->name, message ? message : "");
}

static int host_msg_string(duet_host_ctx_t *ctx, const duet_msg_t *msg, const char *pointer, const char **out,
                           size_t *out_len) {
  (void)ctx;
  if (!out || !out_len)
    return DUET_EINVAL;
  return duet__message_string(msg, pointer, out, out_len);
}

/* ---- fd watches (1.4) ---- */

static int uv_events_of(uint32_t events) {
  return ((events & DUET_FD_READ) ? UV_READABLE : 0) | ((events & DUET_FD_WRITE) ? UV_WRITABLE : 0);
}

static void fd_watch_closed(uv_handle_t *handle) { free(handle->data); }

static void fd_watch_free(duet_host_state_t *host, host_fd_watch_t *w) {
  if (w->prev)
    w->prev->next = w->next;
  else
    host->fd_watches = w->next;
  if (w->next)
    w->next->prev = w->prev;
  uv_poll_stop(&w->handle);
  uv_close((uv_handle_t *)&w->handle, fd_watch_closed);
}

static void fd_ready(uv_poll_t *handle, int status, int events) {
  host_fd_watch_t *w = handle->data;
  uint32_t ready = status < 0 ? DUET_FD_ERROR : 0;
  ready |= ((events & UV_READABLE) ? DUET_FD_READ : 0) | ((events & UV_WRITABLE) ? DUET_FD_WRITE : 0);
  w->cb(w->userdata, ready);
}

static host_fd_watch_t *find_fd_watch(duet_host_ctx_t *ctx, int64_t id) {
  for (host_fd_watch_t *w = ctx->host->fd_watches; w; w = w->next)
    if (w->id == id && w->owner == ctx)
      return w;
  return NULL;
}

static int64_t host_fd_watch(duet_host_ctx_t *ctx, int fd, uint32_t events, duet_fd_cb cb, void *userdata) {
  duet_host_state_t *host = ctx->host;
  if (fd < 0 || !cb || (events & ~(DUET_FD_READ | DUET_FD_WRITE)))
    return DUET_EINVAL;
  for (host_fd_watch_t *w = host->fd_watches; w; w = w->next)
    if (w->fd == fd)
      return DUET_EINVAL;
  host_fd_watch_t *w = calloc(1, sizeof *w);
  if (!w)
    return DUET_ENOMEM;
  if (uv_poll_init_socket(host->env.loop, &w->handle, fd) != 0) {
    free(w);
    return DUET_EINVAL;
  }
  w->handle.data = w;
  w->id = ++host->next_fd_watch_id;
  w->fd = fd;
  w->owner = ctx;
  w->host = host;
  w->cb = cb;
  w->userdata = userdata;
  w->next = host->fd_watches;
  if (w->next)
    w->next->prev = w;
  host->fd_watches = w;
  if (events)
    uv_poll_start(&w->handle, uv_events_of(events), fd_ready);
  return w->id;
}

static int host_fd_watch_set(duet_host_ctx_t *ctx, int64_t id, uint32_t events) {
  host_fd_watch_t *w = find_fd_watch(ctx, id);
  if (!w)
    return DUET_ENOENT;
  if (events & ~(DUET_FD_READ | DUET_FD_WRITE))
    return DUET_EINVAL;
  if (events)
    uv_poll_start(&w->handle, uv_events_of(events), fd_ready);
  else
    uv_poll_stop(&w->handle);
  return 0;
}

static int host_fd_watch_stop(duet_host_ctx_t *ctx, int64_t id) {
  host_fd_watch_t *w = find_fd_watch(ctx, id);
  if (!w)
    return DUET_ENOENT;
  fd_watch_free(ctx->host, w);
  return 0;
}

/* ---- health, the listener (1.4), the node (1.5) and the exit (1.6) ---- */

static int host_set_health(duet_host_ctx_t *ctx, int degraded, const char *reason) {
  ctx->degraded = degraded != 0;
  snprintf(ctx->health_reason, sizeof ctx->health_reason, "%s", reason ? reason : "");
  return 0;
}

static int host_listen_port(duet_host_ctx_t *ctx) {
  const duet_host_env_t *env = env_of(ctx);
  if (env->listen_port && *env->listen_port > 0)
    return *env->listen_port;
  return env->opt->port;
}

static int host_node_info(duet_host_ctx_t *ctx, duet_node_info_t *info) {
  if (!info || info->struct_size < offsetof(duet_node_info_t, state_dir) + sizeof info->state_dir)
    return DUET_EINVAL;
  const duet_options_t *opt = env_of(ctx)->opt;
  info->worker_index = opt->worker_index;
  info->worker_count = opt->worker_index ? opt->worker_count : 1;
  duet__node_id(opt, host_listen_port(ctx), info->node_id, sizeof info->node_id);
  if (opt->state_dir)
    snprintf(info->state_dir, sizeof info->state_dir, "%s", opt->state_dir);
  else
    duet__paths_default_state_dir(info->state_dir, sizeof info->state_dir);
  return 0;
}

static int host_hold_exit(duet_host_ctx_t *ctx, int delta) {
  if ((delta != 1 && delta != -1) || (delta == -1 && ctx->exit_holds == 0))
    return DUET_EINVAL;
  duet_host_state_t *host = ctx->host;
  if (delta == 1) {
    ctx->exit_holds++;
    host->exit_holds++;
    return 0;
  }
  ctx->exit_holds--;
  if (--host->exit_holds == 0 && host->env.exit_released)
    host->env.exit_released(host->env.exit_data);
  return 0;
}

const duet_host_t duet__host_table = {
    .abi_major = DUET_ABI_MAJOR,
    .abi_minor = DUET_ABI_MINOR,
    .struct_size = sizeof(duet_host_t),
    .send = host_send,
    .send_error = host_send_error,
    .close = host_close,
    .timer_start = host_timer_start,
    .timer_stop = host_timer_stop,
    .emit = host_emit,
    .conn_set_data = host_conn_set_data,
    .conn_get_data = host_conn_get_data,
    .config_get = host_config_get,
    .log = host_log,
    .msg_string = host_msg_string,
    .conn_info = host_conn_info,
    .ping = host_ping,
    .metric_register = host_metric_register,
    .metric_add = host_metric_add,
    .metric_set = host_metric_set,
    .fd_watch = host_fd_watch,
    .fd_watch_set = host_fd_watch_set,
    .fd_watch_stop = host_fd_watch_stop,
    .set_health = host_set_health,
    .listen_port = host_listen_port,
    .node_info = host_node_info,
    .hold_exit = host_hold_exit,
};

void duet__host_init(duet_host_state_t *host, const duet_host_env_t *env) {
  memset(host, 0, sizeof *host);
  host->env = *env;
}

void duet__host_release(duet_host_state_t *host) {
  while (host->timers)
    timer_free(host, host->timers);
  while (host->fd_watches)
    fd_watch_free(host, host->fd_watches);
}
