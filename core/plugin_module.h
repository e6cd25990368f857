/* A plugin module: found by name or path (or linked in), opened, its
 * descriptor checked before anything of it runs; its options and commands
 * read at the entry size it was built with. The chain (plugins.c) orders,
 * starts and runs what is loaded here. */
#ifndef DUET_PLUGIN_MODULE_H
#define DUET_PLUGIN_MODULE_H

#include <stddef.h>

#include <uv.h>

#include "duet/plugin.h"
#include "options.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct duet_plugin_module {
  const duet_plugin_t *desc;
  char *source; /* file it came from, or "built-in" */
  uv_lib_t lib;
  int lib_open;
} duet_plugin_module_t;

typedef struct duet_plugin_modules {
  duet_plugin_module_t *items; /* in load order */
  size_t count;
} duet_plugin_modules_t;

/* Loads every plugin opt names (--plugin, then each --plugin-dir in name
 * order) into modules and checks that each --plugin-opt names a loaded
 * plugin and a key it declares. On failure writes a sentence to err and
 * returns DUET_EINVAL (fix the command line) or another negative error;
 * what was loaded stays in modules: close it. */
int duet__plugin_module_load_all(duet_plugin_modules_t *modules, const duet_options_t *opt, char *err, size_t err_len);
/* Unmaps one module (kept mapped under DUET_KEEP_PLUGINS_LOADED, so a leak
 * checker's stacks stay readable) and frees its source. */
void duet__plugin_module_close(duet_plugin_module_t *module);

/* A bundled plugin's descriptor, read before any plugin is loaded so the
 * command line can offer its shorthand flags and commands: found among the
 * linked-in plugins (static builds) or dlopened like a load would, calling
 * only the entry function (never init). */
typedef struct duet_plugin_peek duet_plugin_peek_t;
int duet__plugin_module_peek(const char *name, duet_plugin_peek_t **out, char *err, size_t err_len);
const duet_plugin_t *duet__plugin_module_peek_descriptor(const duet_plugin_peek_t *peek);
/* Unloads what duet__plugin_module_peek opened; the descriptor is gone then. */
void duet__plugin_module_peek_close(duet_plugin_peek_t *peek);

/* Copies option i of desc into out, honouring the entry size the plugin
 * was built with (fields its ABI lacks read as zero). Returns 1, or 0 past
 * the last option. */
int duet__plugin_module_option(const duet_plugin_t *desc, size_t i, duet_plugin_option_t *out);
/* Command i of desc, or NULL past the last (or for a malformed entry). */
const duet_plugin_command_t *duet__plugin_module_command(const duet_plugin_t *desc, size_t i);

#ifdef __cplusplus
}
#endif

#endif
