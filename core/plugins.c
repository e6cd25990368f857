/* The plugin chain: loading, ordering by stage, dispatch in chain order. */
#include "plugins.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "host_ctx.h"
#include "log.h"
#include "paths.h"
#include "static_plugins.h"

typedef struct plugin {
  const duet_plugin_t *desc;
  void *state;
  uv_lib_t lib;
  int lib_open;
  char *source;           /* file it came from, or "built-in" */
  duet_stage_t stage;     /* its place in the chain, once ordered */
  const char *stage_from; /* "declared", "inherited" or "--plugin-stage" */
  duet_host_ctx_t ctx;
} plugin_t;

struct duet_plugins {
  plugin_t *list; /* in chain order once loaded */
  size_t count;
  const duet_options_t *opt;
};

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
  char *source_copy = strdup(source);
  plugin_t *list = source_copy ? realloc(plugins->list, (plugins->count + 1) * sizeof *list) : NULL;
  if (!list) {
    free(source_copy);
    return DUET_ENOMEM;
  }
  plugins->list = list;
  plugin_t *p = &list[plugins->count];
  memset(p, 0, sizeof *p);
  p->desc = desc;
  p->source = source_copy;
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
    return DUET_EINVAL;
  }
  if (uv_dlopen(path, lib) != 0) {
    snprintf(err, err_len, "plugin %s could not be loaded: %s", path, uv_dlerror(lib));
    uv_dlclose(lib);
    return DUET_EIO;
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
    r = DUET_EINVAL;
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
  return DUET_EINVAL;
}

static int by_name(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int load_dir(duet_plugins_t *plugins, const char *dir, char *err, size_t err_len) {
  DIR *d = opendir(dir);
  if (!d) {
    snprintf(err, err_len, "plugin folder %s cannot be read: %s", dir, strerror(errno));
    return DUET_EINVAL;
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
    if (grown)
      names = grown;
    char *copy = grown ? strdup(e->d_name) : NULL;
    if (!copy) {
      r = DUET_ENOMEM;
      break;
    }
    names[n++] = copy;
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
      return DUET_EINVAL;
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
      return DUET_EINVAL;
    }
  }
  return 0;
}

/* ---- the order of the chain ---- */

static duet_stage_t declared_stage(const duet_plugin_t *desc) {
  return HAS_FIELD(desc, stage) ? desc->stage : DUET_STAGE_UNSET;
}

/* Each plugin's stage: the one --plugin-stage gives, else the one it
 * declares, else (a plugin that does not say, or one built before ABI 1.5)
 * that of the plugin loaded just before it, so it keeps today's place. */
static int assign_stages(duet_plugins_t *plugins, char *err, size_t err_len) {
  duet_stage_t previous = DUET_STAGE_TRANSPORT;
  for (size_t i = 0; i < plugins->count; i++) {
    plugin_t *p = &plugins->list[i];
    p->stage = declared_stage(p->desc);
    p->stage_from = "declared";
    if (p->stage == DUET_STAGE_UNSET) {
      p->stage = previous;
      p->stage_from = "inherited";
    }
    previous = p->stage;
  }
  const duet_options_t *opt = plugins->opt;
  for (size_t k = 0; k < opt->plugin_stage_count; k++) {
    const duet_plugin_stage_t *o = &opt->plugin_stages[k];
    plugin_t *owner = NULL;
    for (size_t i = 0; i < plugins->count; i++)
      if (strcmp(plugins->list[i].desc->name, o->plugin) == 0)
        owner = &plugins->list[i];
    if (!owner) {
      snprintf(err, err_len, "--plugin-stage %s=%s: no plugin named \"%s\" is loaded (--list-plugins shows the chain)",
               o->plugin, duet_stage_name(o->stage), o->plugin);
      return DUET_EINVAL;
    }
    owner->stage = o->stage;
    owner->stage_from = "--plugin-stage";
  }
  return 0;
}

/* A stable sort by stage: load order holds within a stage. */
static void order_chain(duet_plugins_t *plugins) {
  for (size_t i = 1; i < plugins->count; i++) {
    plugin_t moving = plugins->list[i];
    size_t j = i;
    for (; j > 0 && plugins->list[j - 1].stage > moving.stage; j--)
      plugins->list[j] = plugins->list[j - 1];
    plugins->list[j] = moving;
  }
}

static int load_all(duet_plugins_t *plugins, char *err, size_t err_len) {
  const duet_options_t *opt = plugins->opt;
  int r = 0;
  for (size_t i = 0; i < opt->plugin_count && r == 0; i++)
    r = is_path(opt->plugins[i]) ? load_file(plugins, opt->plugins[i], err, err_len)
                                 : load_named(plugins, opt->plugins[i], err, err_len);
  for (size_t i = 0; i < opt->plugin_dir_count && r == 0; i++)
    r = load_dir(plugins, opt->plugin_dirs[i], err, err_len);
  if (r == 0)
    r = check_plugin_opts(plugins, err, err_len);
  if (r == 0)
    r = assign_stages(plugins, err, err_len);
  if (r == 0)
    order_chain(plugins);
  return r;
}

int duet__plugins_load(duet_plugins_t **out, const duet_host_t *table, struct duet_host_state *host,
                       const duet_options_t *opt, char *err, size_t err_len) {
  duet_plugins_t *plugins = calloc(1, sizeof *plugins);
  *out = plugins;
  if (!plugins)
    return DUET_ENOMEM;
  plugins->opt = opt;
  int r = load_all(plugins, err, err_len);
  if (r != 0)
    return r;
  /* The list does not move from here on: each ctx's address is the plugin's handle. */
  for (size_t i = 0; i < plugins->count; i++) {
    plugin_t *p = &plugins->list[i];
    p->ctx = (duet_host_ctx_t){.host = host, .plugins = plugins, .desc = p->desc, .index = i, .name = p->desc->name};
  }
  for (size_t i = 0; i < plugins->count; i++) {
    plugin_t *p = &plugins->list[i];
    r = p->desc->init(table, &p->ctx, &p->state);
    if (r != 0) {
      snprintf(err, err_len, "plugin %s (%s) failed to start: error %d (%s)", p->desc->name, p->source, r,
               strerror(-r));
      /* DUET_EINVAL from init means a bad option value: a usage error. Any
       * other code is a failure of the environment, whatever errno it is. */
      return r == DUET_EINVAL || r == DUET_ENOMEM ? r : DUET_EIO;
    }
    p->ctx.initialized = 1;
  }
  return 0;
}

size_t duet__plugins_count(const duet_plugins_t *plugins) { return plugins ? plugins->count : 0; }

static void print_stage(const plugin_t *p) {
  const char *name = duet_stage_name(p->stage);
  if (strcmp(name, "unknown") == 0)
    printf("stage %d", (int)p->stage);
  else
    printf("stage %s", name);
  if (strcmp(p->stage_from, "declared") != 0)
    printf(" (%s)", p->stage_from);
}

void duet__plugins_print(const duet_plugins_t *plugins) {
  for (size_t i = 0; i < plugins->count; i++) {
    const plugin_t *p = &plugins->list[i];
    const duet_plugin_t *d = p->desc;
    printf("%s %s  %s  [%s, ABI %u.%u, ", d->name, d->version, d->description ? d->description : "", p->source,
           d->abi_major, d->abi_minor);
    print_stage(p);
    printf(", %zu of %zu in the chain]\n", i + 1, plugins->count);
    duet_plugin_option_t o;
    for (size_t k = 0; duet__plugins_option(d, k, &o); k++)
      printf("    --plugin-opt %s.%s=VALUE  %s (default: %s)\n", d->name, o.key, o.help ? o.help : "",
             o.default_value ? o.default_value : "none");
  }
}

/* ---- dispatch, in chain order ---- */

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

void duet__plugins_emit(duet_plugins_t *plugins, const duet_event_t *event) {
  if (!plugins)
    return;
  for (size_t i = 0; i < plugins->count; i++) {
    plugin_t *p = &plugins->list[i];
    void (*on_event)(void *, const duet_event_t *) = OPTIONAL(p->desc, on_event);
    if (on_event && p->ctx.initialized)
      on_event(p->state, event);
  }
}

void duet__plugins_on_close(duet_plugins_t *plugins, uint64_t conn, duet_close_reason_t reason) {
  for (size_t i = 0; i < plugins->count; i++) {
    plugin_t *p = &plugins->list[i];
    void (*on_close)(void *, uint64_t, duet_close_reason_t) = OPTIONAL(p->desc, on_close);
    if (on_close)
      on_close(p->state, conn, reason);
  }
}

int duet__plugins_degraded(const duet_plugins_t *plugins, char *reasons, size_t len) {
  int degraded = 0;
  size_t used = 0;
  if (len)
    reasons[0] = '\0';
  for (size_t i = 0; plugins && i < plugins->count; i++) {
    const duet_host_ctx_t *ctx = &plugins->list[i].ctx;
    if (!ctx->degraded || !ctx->initialized)
      continue;
    if (used < len) {
      int n = snprintf(reasons + used, len - used, "%s%s: %s", degraded ? "; " : "", ctx->name, ctx->health_reason);
      used += n > 0 ? (size_t)n : 0;
    }
    degraded = 1;
  }
  return degraded;
}

/* ---- the end ---- */

void duet__plugins_shutdown(duet_plugins_t *plugins) {
  for (size_t i = plugins ? plugins->count : 0; i > 0; i--) {
    plugin_t *p = &plugins->list[i - 1];
    if (p->ctx.initialized)
      p->desc->shutdown(p->state);
    p->ctx.initialized = 0;
  }
}

void duet__plugins_unload(duet_plugins_t *plugins) {
  if (!plugins)
    return;
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
