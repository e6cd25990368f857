/* The host table: every function a plugin may call, checked against the
 * connection table by id (a plugin never holds a pointer of ours). */
#include "plugins_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "message.h"
#include "metrics.h"

static duet_plugins_t *plugins_of(duet_host_ctx_t *ctx) { return ctx->plugins; }

static duet_conn_t *live_conn(duet_host_ctx_t *ctx, uint64_t id) {
  duet_conn_t *conn = duet__conns_get(ctx->plugins->env.conns, id);
  /* At shutdown every plugin hears of every connection before any closes,
   * so sends still work then (see on_close in plugin.h). */
  return conn && !conn->closing && (!conn->plugins_told || ctx->plugins->env.conns->draining) ? conn : NULL;
}

static int host_send(duet_host_ctx_t *ctx, uint64_t id, const char *json, size_t len) {
  duet_conn_t *conn = live_conn(ctx, id);
  if (!conn)
    return DUET_ENOCONN;
  if (!json)
    return DUET_EINVAL;
  return duet__conn_send(ctx->plugins->env.conns, conn, json, len);
}

static int host_send_error(duet_host_ctx_t *ctx, uint64_t id, const char *code, const char *message) {
  duet_conn_t *conn = live_conn(ctx, id);
  if (!conn)
    return DUET_ENOCONN;
  if (!code || !message)
    return DUET_EINVAL;
  return duet__conn_send_error(ctx->plugins->env.conns, conn, code, message);
}

static int host_close(duet_host_ctx_t *ctx, uint64_t id, int ws_code, const char *reason, duet_close_reason_t why) {
  duet_conn_t *conn = live_conn(ctx, id);
  if (!conn)
    return DUET_ENOCONN;
  /* ABI 1.0 declared close without why: whatever that register holds is noise. */
  if (plugins_of(ctx)->list[ctx->index].desc->abi_minor == 0)
    why = DUET_CLOSE_SERVER;
  if (ws_code < 1000 || ws_code > 4999 || why < DUET_CLOSE_CLIENT || why > DUET_CLOSE_TAKEOVER)
    return DUET_EINVAL;
  duet__conn_close(conn, ws_code, reason, why);
  return 0;
}

static int host_conn_info(duet_host_ctx_t *ctx, uint64_t id, duet_conn_info_t *info) {
  duet_conn_t *conn = duet__conns_get(ctx->plugins->env.conns, id);
  if (!conn)
    return DUET_ENOCONN;
  if (!info || info->struct_size < offsetof(duet_conn_info_t, idle_ms) + sizeof info->idle_ms)
    return DUET_EINVAL;
  info->remote_port = conn->port;
  snprintf(info->remote_addr, sizeof info->remote_addr, "%s", conn->addr);
  snprintf(info->user_agent, sizeof info->user_agent, "%s", conn->user_agent ? conn->user_agent : "");
  snprintf(info->tls_version, sizeof info->tls_version, "%s", conn->tls_version ? conn->tls_version : "");
  info->connected_unix_ms = conn->connected_unix_ms;
  uint64_t now = uv_now(ctx->plugins->env.loop);
  info->idle_ms = now > conn->last_rx_ms ? now - conn->last_rx_ms : 0;
  if (info->struct_size >= offsetof(duet_conn_info_t, client_close_code) + sizeof info->client_close_code)
    info->client_close_code = conn->client_close_code;
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
  return duet__metrics_register(ctx->plugins->env.metrics, name, help, type);
}

static int host_metric_add(duet_host_ctx_t *ctx, int64_t id, int64_t delta) {
  return duet__metrics_add(ctx->plugins->env.metrics, id, delta);
}

static int host_metric_set(duet_host_ctx_t *ctx, int64_t id, int64_t value) {
  return duet__metrics_set(ctx->plugins->env.metrics, id, value);
}

static void timer_closed(uv_handle_t *handle) { free(handle->data); }

void duet__host_timer_free(duet_plugins_t *plugins, host_timer_t *t) {
  if (t->prev)
    t->prev->next = t->next;
  else
    plugins->timers = t->next;
  if (t->next)
    t->next->prev = t->prev;
  uv_timer_stop(&t->handle);
  uv_close((uv_handle_t *)&t->handle, timer_closed);
}

static void timer_fired(uv_timer_t *handle) {
  host_timer_t *t = handle->data;
  duet_plugins_t *plugins = t->plugins;
  int repeating = uv_timer_get_repeat(handle) > 0;
  t->cb(t->userdata);
  /* A one-shot timer is spent: free it unless its callback already did. */
  if (!repeating && plugins) {
    for (host_timer_t *it = plugins->timers; it; it = it->next)
      if (it == t) {
        duet__host_timer_free(plugins, t);
        break;
      }
  }
}

static int64_t host_timer_start(duet_host_ctx_t *ctx, uint64_t timeout_ms, uint64_t repeat_ms, duet_timer_cb cb,
                                void *userdata) {
  if (!cb)
    return DUET_EINVAL;
  duet_plugins_t *plugins = plugins_of(ctx);
  host_timer_t *t = calloc(1, sizeof *t);
  if (!t)
    return DUET_ENOMEM;
  uv_timer_init(ctx->plugins->env.loop, &t->handle);
  t->handle.data = t;
  t->id = ++plugins->next_timer_id;
  t->plugin = ctx->index;
  t->plugins = plugins;
  t->cb = cb;
  t->userdata = userdata;
  t->next = plugins->timers;
  if (t->next)
    t->next->prev = t;
  plugins->timers = t;
  uv_timer_start(&t->handle, timer_fired, timeout_ms, repeat_ms);
  return t->id;
}

static int host_timer_stop(duet_host_ctx_t *ctx, int64_t id) {
  duet_plugins_t *plugins = plugins_of(ctx);
  for (host_timer_t *t = plugins->timers; t; t = t->next)
    if (t->id == id && t->plugin == ctx->index) {
      duet__host_timer_free(plugins, t);
      return 0;
    }
  return DUET_ENOENT;
}

static int host_emit(duet_host_ctx_t *ctx, const duet_event_t *event) {
  if (!event || !event->name)
    return DUET_EINVAL;
  duet__plugins_emit(plugins_of(ctx), event);
  return 0;
}

void duet__plugins_emit(duet_plugins_t *plugins, const duet_event_t *event) {
  if (!plugins)
    return;
  for (size_t i = 0; i < plugins->count; i++) {
    plugin_t *p = &plugins->list[i];
    void (*on_event)(void *, const duet_event_t *) = OPTIONAL(p->desc, on_event);
    if (on_event && p->initialized)
      on_event(p->state, event);
  }
}

static int host_conn_set_data(duet_host_ctx_t *ctx, uint64_t id, void *data) {
  duet_conn_t *conn = duet__conns_get(ctx->plugins->env.conns, id);
  if (!conn)
    return DUET_ENOCONN;
  conn->plugin_data[ctx->index] = data;
  return 0;
}

static void *host_conn_get_data(duet_host_ctx_t *ctx, uint64_t id) {
  duet_conn_t *conn = duet__conns_get(ctx->plugins->env.conns, id);
  return conn ? conn->plugin_data[ctx->index] : NULL;
}

static const char *host_config_get(duet_host_ctx_t *ctx, const char *key) {
  if (!key)
    return NULL;
  duet_plugins_t *plugins = plugins_of(ctx);
  const duet_options_t *opt = plugins->opt;
  for (size_t i = opt->plugin_opt_count; i > 0; i--) {
    const duet_plugin_opt_t *o = &opt->plugin_opts[i - 1]; /* the last one given wins */
    if (strcmp(o->plugin, ctx->name) == 0 && strcmp(o->key, key) == 0)
      return o->value;
  }
  const duet_plugin_t *desc = plugins->list[ctx->index].desc;
  duet_plugin_option_t o;
  for (size_t i = 0; duet__plugins_option(desc, i, &o); i++)
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

void duet__host_fd_watch_free(duet_plugins_t *plugins, host_fd_watch_t *w) {
  if (w->prev)
    w->prev->next = w->next;
  else
    plugins->fd_watches = w->next;
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
  for (host_fd_watch_t *w = plugins_of(ctx)->fd_watches; w; w = w->next)
    if (w->id == id && w->plugin == ctx->index)
      return w;
  return NULL;
}

static int64_t host_fd_watch(duet_host_ctx_t *ctx, int fd, uint32_t events, duet_fd_cb cb, void *userdata) {
  duet_plugins_t *plugins = plugins_of(ctx);
  if (fd < 0 || !cb || (events & ~(DUET_FD_READ | DUET_FD_WRITE)))
    return DUET_EINVAL;
  for (host_fd_watch_t *w = plugins->fd_watches; w; w = w->next)
    if (w->fd == fd)
      return DUET_EINVAL;
  host_fd_watch_t *w = calloc(1, sizeof *w);
  if (!w)
    return DUET_ENOMEM;
  if (uv_poll_init_socket(plugins->env.loop, &w->handle, fd) != 0) {
    free(w);
    return DUET_EINVAL;
  }
  w->handle.data = w;
  w->id = ++plugins->next_fd_watch_id;
  w->fd = fd;
  w->plugin = ctx->index;
  w->plugins = plugins;
  w->cb = cb;
  w->userdata = userdata;
  w->next = plugins->fd_watches;
  if (w->next)
    w->next->prev = w;
  plugins->fd_watches = w;
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
  duet__host_fd_watch_free(plugins_of(ctx), w);
  return 0;
}

/* ---- health and the listener (1.4) ---- */

static int host_set_health(duet_host_ctx_t *ctx, int degraded, const char *reason) {
  plugin_t *p = &plugins_of(ctx)->list[ctx->index];
  p->degraded = degraded != 0;
  snprintf(p->health_reason, sizeof p->health_reason, "%s", reason ? reason : "");
  return 0;
}

int duet__plugins_degraded(const duet_plugins_t *plugins, char *reasons, size_t len) {
  int degraded = 0;
  size_t used = 0;
  if (len)
    reasons[0] = '\0';
  for (size_t i = 0; plugins && i < plugins->count; i++) {
    const plugin_t *p = &plugins->list[i];
    if (!p->degraded || !p->initialized)
      continue;
    if (used < len) {
      int n = snprintf(reasons + used, len - used, "%s%s: %s", degraded ? "; " : "", p->ctx.name, p->health_reason);
      used += n > 0 ? (size_t)n : 0;
    }
    degraded = 1;
  }
  return degraded;
}

static int host_listen_port(duet_host_ctx_t *ctx) {
  const duet_plugins_t *plugins = plugins_of(ctx);
  if (plugins->env.listen_port && *plugins->env.listen_port > 0)
    return *plugins->env.listen_port;
  return plugins->opt->port;
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
};
