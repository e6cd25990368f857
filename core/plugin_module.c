#include "plugin_module.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host_ctx.h"
#include "paths.h"
#include "static_plugins.h"

/* Entries of an ABI 1.0-1.2 options array end where 1.3 appended flag. */
#define OPTION_SIZE_1_0 offsetof(duet_plugin_option_t, flag)

/* The stride of desc's options array: the entry size it was built with. */
static size_t option_stride(const duet_plugin_t *desc) {
  if (HAS_FIELD(desc, option_size) && desc->option_size >= OPTION_SIZE_1_0)
    return desc->option_size;
  return OPTION_SIZE_1_0;
}

int duet__plugin_module_option(const duet_plugin_t *desc, size_t i, duet_plugin_option_t *out) {
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

const duet_plugin_command_t *duet__plugin_module_command(const duet_plugin_t *desc, size_t i) {
  const duet_plugin_command_t *const *commands = OPTIONAL(desc, commands);
  for (size_t k = 0; commands && commands[k]; k++) {
    const duet_plugin_command_t *c = commands[k];
    if (k == i)
      return c->struct_size >= offsetof(duet_plugin_command_t, run) + sizeof c->run && c->name && c->run ? c : NULL;
  }
  return NULL;
}

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

static int add_plugin(duet_plugin_modules_t *modules, const duet_plugin_t *desc, const char *source, uv_lib_t *lib,
                      char *err, size_t err_len) {
  int r = check_descriptor(desc, source, err, err_len);
  if (r != 0)
    return r;
  for (size_t i = 0; i < modules->count; i++)
    if (strcmp(modules->items[i].desc->name, desc->name) == 0) {
      snprintf(err, err_len, "plugin \"%s\" from %s is already loaded from %s", desc->name, source,
               modules->items[i].source);
      return DUET_EINVAL;
    }
  char *source_copy = strdup(source);
  duet_plugin_module_t *list = source_copy ? realloc(modules->items, (modules->count + 1) * sizeof *list) : NULL;
  if (!list) {
    free(source_copy);
    return DUET_ENOMEM;
  }
  modules->items = list;
  duet_plugin_module_t *p = &list[modules->count];
  memset(p, 0, sizeof *p);
  p->desc = desc;
  p->source = source_copy;
  if (lib) {
    p->lib = *lib;
    p->lib_open = 1;
  }
  modules->count++;
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

static int load_file(duet_plugin_modules_t *modules, const char *path, char *err, size_t err_len) {
  uv_lib_t lib;
  const duet_plugin_t *desc = NULL;
  int r = open_module(path, &lib, &desc, err, err_len);
  if (r != 0)
    return r;
  r = add_plugin(modules, desc, path, &lib, err, err_len);
  if (r != 0)
    uv_dlclose(&lib);
  return r;
}

struct duet_plugin_peek {
  const duet_plugin_t *desc;
  uv_lib_t lib;
  int lib_open;
};

int duet__plugin_module_peek(const char *name, duet_plugin_peek_t **out, char *err, size_t err_len) {
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
    duet__plugin_module_peek_close(peek);
    return r;
  }
  *out = peek;
  return 0;
}

const duet_plugin_t *duet__plugin_module_peek_descriptor(const duet_plugin_peek_t *peek) { return peek->desc; }

void duet__plugin_module_peek_close(duet_plugin_peek_t *peek) {
  if (!peek)
    return;
  if (peek->lib_open && !getenv("DUET_KEEP_PLUGINS_LOADED"))
    uv_dlclose(&peek->lib);
  free(peek);
}

static int load_named(duet_plugin_modules_t *modules, const char *name, char *err, size_t err_len) {
  for (const duet_static_plugin_t *s = duet__static_plugins; s->name; s++)
    if (strcmp(s->name, name) == 0)
      return add_plugin(modules, s->entry(), "built-in", NULL, err, err_len);

  char path[4096];
  if (duet__paths_find_plugin(name, path, sizeof path) == 0)
    return load_file(modules, path, err, err_len);
  snprintf(err, err_len, "no plugin named \"%s\": looked for duet-%s.so in %s; give a path to load a plugin file", name,
           name, duet__paths_plugin_search_desc());
  return DUET_EINVAL;
}

static int by_name(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int load_dir(duet_plugin_modules_t *modules, const char *dir, char *err, size_t err_len) {
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
    r = load_file(modules, path, err, err_len);
  }
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  return r;
}

static int is_path(const char *s) { return strchr(s, '/') != NULL || strstr(s, ".so") != NULL; }

/* Every --plugin-opt must name a loaded plugin and a key it declares. */
static int check_plugin_opts(const duet_plugin_modules_t *modules, const duet_options_t *opt, char *err,
                             size_t err_len) {
  for (size_t i = 0; i < opt->plugin_opt_count; i++) {
    const duet_plugin_opt_t *o = &opt->plugin_opts[i];
    const duet_plugin_module_t *owner = NULL;
    for (size_t j = 0; j < modules->count; j++)
      if (strcmp(modules->items[j].desc->name, o->plugin) == 0)
        owner = &modules->items[j];
    if (!owner) {
      snprintf(err, err_len, "--plugin-opt %s.%s: no plugin named \"%s\" is loaded", o->plugin, o->key, o->plugin);
      return DUET_EINVAL;
    }
    duet_plugin_option_t known;
    int found = 0;
    for (size_t k = 0; duet__plugin_module_option(owner->desc, k, &known); k++)
      found |= strcmp(known.key, o->key) == 0;
    if (!found) {
      size_t used =
          (size_t)snprintf(err, err_len, "--plugin-opt %s.%s: plugin %s has no option \"%s\"; its options:", o->plugin,
                           o->key, o->plugin, o->key);
      if (!duet__plugin_module_option(owner->desc, 0, &known))
        used +=
            (size_t)snprintf(err + (used < err_len ? used : err_len - 1), used < err_len ? err_len - used : 1, " none");
      for (size_t k = 0; duet__plugin_module_option(owner->desc, k, &known) && used < err_len; k++)
        used += (size_t)snprintf(err + used, err_len - used, " %s", known.key);
      return DUET_EINVAL;
    }
  }
  return 0;
}

int duet__plugin_module_load_all(duet_plugin_modules_t *modules, const duet_options_t *opt, char *err, size_t err_len) {
  int r = 0;
  for (size_t i = 0; i < opt->plugin_count && r == 0; i++)
    r = is_path(opt->plugins[i]) ? load_file(modules, opt->plugins[i], err, err_len)
                                 : load_named(modules, opt->plugins[i], err, err_len);
  for (size_t i = 0; i < opt->plugin_dir_count && r == 0; i++)
    r = load_dir(modules, opt->plugin_dirs[i], err, err_len);
  if (r == 0)
    r = check_plugin_opts(modules, opt, err, err_len);
  return r;
}

void duet__plugin_module_close(duet_plugin_module_t *module) {
  if (module->lib_open && !getenv("DUET_KEEP_PLUGINS_LOADED"))
    uv_dlclose(&module->lib);
  module->lib_open = 0;
  free(module->source);
  module->source = NULL;
}
