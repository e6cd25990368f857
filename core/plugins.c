#include "plugins.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "message.h"
#include "metrics.h"
#include "paths.h"
#include "static_plugins.h"

struct duet_host_ctx {
  duet_plugins_t *plugins;
  size_t index;
  const char *name;
  /* A plugin may log per connection (keepalive's timeouts): a flood of
   * clients must not become a flood of lines. */
  duet_log_limit_t log_limit;
  duet_log_limit_t error_limit; /* errors are not crowded out by a flood of info lines */
};

typedef struct plugin {
  const duet_plugin_t *desc;
  void *state;
  int initialized;
  uv_lib_t lib;
  int lib_open;
  char *source; /* file it came from, or "built-in" */
  duet_host_ctx_t ctx;
} plugin_t;

typedef struct host_timer {
  uv_timer_t handle;
  int64_t id;
  size_t plugin;
  duet_plugins_t *plugins;
  duet_timer_cb cb;
  void *userdata;
  struct host_timer *prev, *next;
} host_timer_t;

struct duet_plugins {
  plugin_t *list;
  size_t count;
  duet_plugins_env_t env;
  const duet_options_t *opt;
  host_timer_t *timers;
  int64_t next_timer_id;
};

/* A field of a plugin struct may be read only when the plugin's struct_size
 * covers it: an older plugin's struct is shorter. */
#define HAS_FIELD(desc, field) ((desc)->struct_size >= offsetof(duet_plugin_t, field) + sizeof((desc)->field))
#define OPTIONAL(desc, field) (HAS_FIELD(desc, field) ? (desc)->field : NULL)

/* Entries of an ABI 1.0-1.2 options array end where 1.3 appended flag. */
#define OPTION_SIZE_1_0 offsetof(duet_plugin_option_t, flag)

/* The stride of desc's options array: the entry size it was built with. */
static size_t option_stride(const duet_plugin_t *desc) {
  if (HAS_FIELD(desc, option_size) && desc->option_size >= OPTION_SIZE_1_0)
    return desc->option_size;
  return OPTION_SIZE_1_0;
}

int duet__plugins_option(const duet_plugin_t *desc, size_t i, duet_plugin_option_t *out) {
  const duet_plugin_option_t *options = OPTIONAL(desc, options);
  if (!options)
    return 0;
  size_t stride = option_stride(desc);
  const char *entry = (const char *)options + i * stride;
  memset(out, 0, sizeof *out);
  /* Only the fields the plugin's entries hold; the rest read as zero. */
  memcpy(out, entry, stride < sizeof *out ? stride : sizeof *out);
  return out->key != NULL;
}

const duet_plugin_command_t *duet__plugins_command(const duet_plugin_t *desc, size_t i) {
  const duet_plugin_command_t *const *commands = OPTIONAL(desc, commands);
  for (size_t k = 0; commands && commands[k]; k++) {
    const duet_plugin_command_t *c = commands[k];
    if (k == i)
      return c->struct_size >= offsetof(duet_plugin_command_t, run) + sizeof c->run && c->name && c->run ? c : NULL;
  }
  return NULL;
}

/* ---- host table ---- */

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

static void timer_free(duet_plugins_t *plugins, host_timer_t *t) {
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
        timer_free(plugins, t);
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
      timer_free(plugins, t);
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

static const duet_host_t host_table = {
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
};

/* ---- loading ---- */

/* Checks a plugin's descriptor before anything of it is called. */
static int check_descriptor(const duet_plugin_t *d, const char *source, char *err, size_t err_len) {
  if (!d) {
    snprintf(err, err_len, "plugin %s: its entry function returned NULL", source);
    return DUET_EINVAL;
  }
  if (d->abi_major != DUET_ABI_MAJOR) {
    snprintf(err, err_len,
             "plugin %s was built for duet plugin ABI %u.%u, but this duetd provides ABI %d.%d: "
             "rebuild the plugin against this duetd's headers",
             source, d->abi_major, d->abi_minor, DUET_ABI_MAJOR, DUET_ABI_MINOR);
    return DUET_EINVAL;
  }
  if (!HAS_FIELD(d, shutdown)) {
    snprintf(err, err_len,
             "plugin %s (ABI %u.%u) has a descriptor of %u bytes, too small for ABI %d.x: it is "
             "corrupt or was built with wrong headers",
             source, d->abi_major, d->abi_minor, d->struct_size, DUET_ABI_MAJOR);
    return DUET_EINVAL;
  }
  if (!d->name || !d->version || !d->init || !d->shutdown) {
    snprintf(err, err_len, "plugin %s lacks a required field (name, version, init or shutdown)", source);
    return DUET_EINVAL;
  }
  for (const char *c = d->name; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-')) {
      snprintf(err, err_len, "plugin %s has an invalid name \"%s\" (use a-z, 0-9 and -)", source, d->name);
      return DUET_EINVAL;
    }
  return 0;
}

static int add_plugin(duet_plugins_t *plugins, const duet_plugin_t *desc, const char *source, uv_lib_t *lib, char *err,
                      size_t err_len) {
  int r = check_descriptor(desc, source, err, err_len);
  if (r != 0)
    return r;
  for (size_t i = 0; i < plugins->count; i++)
    if (strcmp(plugins->list[i].desc->name, desc->name) == 0) {
      snprintf(err, err_len, "plugin \"%s\" from %s is already loaded from %s", desc->name, source,
               plugins->list[i].source);
      return DUET_EINVAL;
    }
  plugin_t *list = realloc(plugins->list, (plugins->count + 1) * sizeof *list);
  if (!list)
    return DUET_ENOMEM;
  plugins->list = list;
  plugin_t *p = &list[plugins->count];
  memset(p, 0, sizeof *p);
  p->desc = desc;
  p->source = strdup(source);
  if (lib) {
    p->lib = *lib;
    p->lib_open = 1;
  }
  plugins->count++;
  return 0;
}

/* Opens a shared module and calls its entry function, nothing else. */
static int open_module(const char *path, uv_lib_t *lib, const duet_plugin_t **desc, char *err, size_t err_len) {
  if (access(path, R_OK) != 0) {
    snprintf(err, err_len, "plugin file %s cannot be read: %s", path, strerror(errno));
    return DUET_ENOENT;
  }
  if (uv_dlopen(path, lib) != 0) {
    snprintf(err, err_len, "plugin %s could not be loaded: %s", path, uv_dlerror(lib));
    uv_dlclose(lib);
    return DUET_EINVAL;
  }
  duet_plugin_entry_fn entry = NULL;
  if (uv_dlsym(lib, DUET_PLUGIN_ENTRY_SYMBOL, (void **)&entry) != 0 || !entry) {
    snprintf(err, err_len,
             "%s is not a duet plugin for ABI %d: it does not export %s (a plugin for another ABI "
             "major exports duet_plugin_entry_vN)",
             path, DUET_ABI_MAJOR, DUET_PLUGIN_ENTRY_SYMBOL);
    uv_dlclose(lib);
    return DUET_EINVAL;
  }
  *desc = entry();
  return 0;
}

static int load_file(duet_plugins_t *plugins, const char *path, char *err, size_t err_len) {
  uv_lib_t lib;
  const duet_plugin_t *desc = NULL;
  int r = open_module(path, &lib, &desc, err, err_len);
  if (r != 0)
    return r;
  r = add_plugin(plugins, desc, path, &lib, err, err_len);
  if (r != 0)
    uv_dlclose(&lib);
  return r;
}

struct duet_plugin_peek {
  const duet_plugin_t *desc;
  uv_lib_t lib;
  int lib_open;
};

int duet__plugins_peek(const char *name, duet_plugin_peek_t **out, char *err, size_t err_len) {
  *out = NULL;
  duet_plugin_peek_t *peek = calloc(1, sizeof *peek);
  if (!peek)
    return DUET_ENOMEM;
  int r = 0;
  for (const duet_static_plugin_t *s = duet__static_plugins; s->name && !peek->desc; s++)
    if (strcmp(s->name, name) == 0)
      peek->desc = s->entry();
  char path[4096];
  if (!peek->desc && duet__paths_find_plugin(name, path, sizeof path) != 0) {
    snprintf(err, err_len, "no plugin named \"%s\": looked for duet-%s.so in %s", name, name,
             duet__paths_plugin_search_desc());
    r = DUET_ENOENT;
  } else if (!peek->desc) {
    r = open_module(path, &peek->lib, &peek->desc, err, err_len);
    peek->lib_open = r == 0;
  }
  if (r == 0)
    r = check_descriptor(peek->desc, name, err, err_len);
  if (r != 0) {
    duet__plugins_peek_close(peek);
    return r;
  }
  *out = peek;
  return 0;
}

const duet_plugin_t *duet__plugins_peek_descriptor(const duet_plugin_peek_t *peek) { return peek->desc; }

void duet__plugins_peek_close(duet_plugin_peek_t *peek) {
  if (!peek)
    return;
  if (peek->lib_open && !getenv("DUET_KEEP_PLUGINS_LOADED"))
    uv_dlclose(&peek->lib);
  free(peek);
}

static int load_named(duet_plugins_t *plugins, const char *name, char *err, size_t err_len) {
  for (const duet_static_plugin_t *s = duet__static_plugins; s->name; s++)
    if (strcmp(s->name, name) == 0)
      return add_plugin(plugins, s->entry(), "built-in", NULL, err, err_len);

  char path[4096];
  if (duet__paths_find_plugin(name, path, sizeof path) == 0)
    return load_file(plugins, path, err, err_len);
  snprintf(err, err_len, "no plugin named \"%s\": looked for duet-%s.so in %s; give a path to load a plugin file", name,
           name, duet__paths_plugin_search_desc());
  return DUET_ENOENT;
}

static int by_name(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int load_dir(duet_plugins_t *plugins, const char *dir, char *err, size_t err_len) {
  DIR *d = opendir(dir);
  if (!d) {
    snprintf(err, err_len, "plugin folder %s cannot be read: %s", dir, strerror(errno));
    return DUET_ENOENT;
  }
  char **names = NULL;
  size_t n = 0;
  int r = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);
    if (e->d_name[0] == '.' || len < 4 || strcmp(e->d_name + len - 3, ".so") != 0)
      continue;
    char **grown = realloc(names, (n + 1) * sizeof *names);
    if (!grown) {
      r = DUET_ENOMEM;
      break;
    }
    names = grown;
    names[n++] = strdup(e->d_name);
  }
  closedir(d);
  /* Load order is the order of dispatch: make it independent of readdir. */
  if (n)
    qsort(names, n, sizeof *names, by_name);
  for (size_t i = 0; i < n && r == 0; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    r = load_file(plugins, path, err, err_len);
  }
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  return r;
}

static int is_path(const char *s) { return strchr(s, '/') != NULL || strstr(s, ".so") != NULL; }

/* Every --plugin-opt must name a loaded plugin and a key it declares. */
static int check_plugin_opts(duet_plugins_t *plugins, char *err, size_t err_len) {
  const duet_options_t *opt = plugins->opt;
  for (size_t i = 0; i < opt->plugin_opt_count; i++) {
    const duet_plugin_opt_t *o = &opt->plugin_opts[i];
    const plugin_t *owner = NULL;
    for (size_t j = 0; j < plugins->count; j++)
      if (strcmp(plugins->list[j].desc->name, o->plugin) == 0)
        owner = &plugins->list[j];
    if (!owner) {
      snprintf(err, err_len, "--plugin-opt %s.%s: no plugin named \"%s\" is loaded", o->plugin, o->key, o->plugin);
      return -2;
    }
    duet_plugin_option_t known;
    int found = 0;
    for (size_t k = 0; duet__plugins_option(owner->desc, k, &known); k++)
      found |= strcmp(known.key, o->key) == 0;
    if (!found) {
      size_t used =
          (size_t)snprintf(err, err_len, "--plugin-opt %s.%s: plugin %s has no option \"%s\"; its options:", o->plugin,
                           o->key, o->plugin, o->key);
      if (!duet__plugins_option(owner->desc, 0, &known))
        used +=
            (size_t)snprintf(err + (used < err_len ? used : err_len - 1), used < err_len ? err_len - used : 1, " none");
      for (size_t k = 0; duet__plugins_option(owner->desc, k, &known) && used < err_len; k++)
        used += (size_t)snprintf(err + used, err_len - used, " %s", known.key);
      return -2;
    }
  }
  return 0;
}

int duet__plugins_load(duet_plugins_t **out, const duet_plugins_env_t *env, const duet_options_t *opt, char *err,
                       size_t err_len) {
  duet_plugins_t *plugins = calloc(1, sizeof *plugins);
  if (!plugins)
    return DUET_ENOMEM;
  plugins->env = *env;
  plugins->opt = opt;
  *out = plugins;

  int r = 0;
  for (size_t i = 0; i < opt->plugin_count && r == 0; i++)
    r = is_path(opt->plugins[i]) ? load_file(plugins, opt->plugins[i], err, err_len)
                                 : load_named(plugins, opt->plugins[i], err, err_len);
  for (size_t i = 0; i < opt->plugin_dir_count && r == 0; i++)
    r = load_dir(plugins, opt->plugin_dirs[i], err, err_len);
  if (r == 0)
    r = check_plugin_opts(plugins, err, err_len);
  if (r != 0)
    return r;

  for (size_t i = 0; i < plugins->count; i++) {
    plugin_t *p = &plugins->list[i];
    p->ctx.plugins = plugins;
    p->ctx.index = i;
    p->ctx.name = p->desc->name;
  }
  for (size_t i = 0; i < plugins->count; i++) {
    plugin_t *p = &plugins->list[i];
    r = p->desc->init(&host_table, &p->ctx, &p->state);
    if (r != 0) {
      snprintf(err, err_len, "plugin %s (%s) failed to start: error %d (%s)", p->desc->name, p->source, r,
               strerror(-r));
      /* DUET_EINVAL from init means a bad option value: a usage error. */
      return r == DUET_EINVAL ? -2 : r == -2 ? -1 : r;
    }
    p->initialized = 1;
  }
  return 0;
}

size_t duet__plugins_count(const duet_plugins_t *plugins) { return plugins ? plugins->count : 0; }

void duet__plugins_print(const duet_plugins_t *plugins) {
  for (size_t i = 0; i < plugins->count; i++) {
    const duet_plugin_t *d = plugins->list[i].desc;
    printf("%s %s  %s  [%s, ABI %u.%u]\n", d->name, d->version, d->description ? d->description : "",
           plugins->list[i].source, d->abi_major, d->abi_minor);
    duet_plugin_option_t o;
    for (size_t k = 0; duet__plugins_option(d, k, &o); k++)
      printf("    --plugin-opt %s.%s=VALUE  %s (default: %s)\n", d->name, o.key, o.help ? o.help : "",
             o.default_value ? o.default_value : "none");
  }
}

void duet__plugins_on_open(duet_plugins_t *plugins, uint64_t conn) {
  for (size_t i = 0; i < plugins->count; i++) {
    plugin_t *p = &plugins->list[i];
    void (*on_open)(void *, uint64_t) = OPTIONAL(p->desc, on_open);
    if (on_open)
      on_open(p->state, conn);
  }
}

duet_verdict_t duet__plugins_on_message(duet_plugins_t *plugins, uint64_t conn, const duet_msg_t *msg,
                                        duet_reject_t *reject) {
  for (size_t i = 0; i < plugins->count; i++) {
    plugin_t *p = &plugins->list[i];
    duet_verdict_t (*on_message)(void *, uint64_t, const duet_msg_t *, duet_reject_t *) = OPTIONAL(p->desc, on_message);
    if (!on_message)
      continue;
    reject->code = NULL;
    reject->message = NULL;
    duet_verdict_t v = on_message(p->state, conn, msg, reject);
    if (v == DUET_HANDLED)
      return v;
    if (v == DUET_REJECT) {
      if (!reject->code)
        reject->code = "rejected";
      if (!reject->message)
        reject->message = "The server refused this message.";
      return v;
    }
  }
  reject->code = "unknown-type";
  reject->message = "No part of this server handles messages of this type.";
  return DUET_REJECT;
}

void duet__plugins_on_close(duet_plugins_t *plugins, uint64_t conn, duet_close_reason_t reason) {
  for (size_t i = 0; i < plugins->count; i++) {
    plugin_t *p = &plugins->list[i];
    void (*on_close)(void *, uint64_t, duet_close_reason_t) = OPTIONAL(p->desc, on_close);
    if (on_close)
      on_close(p->state, conn, reason);
  }
}

void duet__plugins_unload(duet_plugins_t *plugins) {
  if (!plugins)
    return;
  for (size_t i = plugins->count; i > 0; i--) {
    plugin_t *p = &plugins->list[i - 1];
    if (p->initialized)
      p->desc->shutdown(p->state);
    p->initialized = 0;
  }
  while (plugins->timers)
    timer_free(plugins, plugins->timers);
  for (size_t i = 0; i < plugins->count; i++) {
    plugin_t *p = &plugins->list[i];
    /* Under a leak checker, keep modules mapped so its stacks stay readable. */
    if (p->lib_open && !getenv("DUET_KEEP_PLUGINS_LOADED"))
      uv_dlclose(&p->lib);
    free(p->source);
    duet__log_limit_release(&p->ctx.log_limit);
    duet__log_limit_release(&p->ctx.error_limit);
  }
  free(plugins->list);
  free(plugins);
}
