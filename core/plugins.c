#include "plugins.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_ctx.h"
#include "log.h"
#include "plugin_module.h"

typedef struct plugin {
  duet_plugin_module_t module;
  const duet_plugin_t *desc; /* module.desc */
  void *state;
  duet_stage_t stage;     /* its place in the chain, once ordered */
  const char *stage_from; /* "declared", "inherited" or "--plugin-stage" */
  duet_host_ctx_t ctx;
} plugin_t;

struct duet_plugins {
  plugin_t *list; /* in chain order once loaded */
  size_t count;
  const duet_options_t *opt;
};

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

/* Loads the modules, then gives each a place in the chain. */
static int load_all(duet_plugins_t *plugins, char *err, size_t err_len) {
  duet_plugin_modules_t modules = {0};
  int r = duet__plugin_module_load_all(&modules, plugins->opt, err, err_len);
  plugins->list = modules.count ? calloc(modules.count, sizeof *plugins->list) : NULL;
  if (modules.count && !plugins->list) {
    for (size_t i = 0; i < modules.count; i++)
      duet__plugin_module_close(&modules.items[i]);
    r = DUET_ENOMEM;
  } else {
    for (size_t i = 0; i < modules.count; i++)
      plugins->list[i] = (plugin_t){.module = modules.items[i], .desc = modules.items[i].desc};
    plugins->count = modules.count;
  }
  free(modules.items);
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
      snprintf(err, err_len, "plugin %s (%s) failed to start: error %d (%s)", p->desc->name, p->module.source, r,
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
    printf("%s %s  %s  [%s, ABI %u.%u, ", d->name, d->version, d->description ? d->description : "", p->module.source,
           d->abi_major, d->abi_minor);
    print_stage(p);
    printf(", %zu of %zu in the chain]\n", i + 1, plugins->count);
    duet_plugin_option_t o;
    for (size_t k = 0; duet__plugin_module_option(d, k, &o); k++)
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
    duet__plugin_module_close(&p->module);
    duet__log_limit_release(&p->ctx.log_limit);
    duet__log_limit_release(&p->ctx.error_limit);
  }
  free(plugins->list);
  free(plugins);
}
