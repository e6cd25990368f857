/* Plugins linked into duetd (-Dplugins=static): each exports
 * duet_static_entry_NAME instead of the shared-module entry symbol. */
#ifndef DUET_STATIC_PLUGINS_H
#define DUET_STATIC_PLUGINS_H

#include "duet/plugin.h"

typedef struct duet_static_plugin {
  const char *name;
  duet_plugin_entry_fn entry;
} duet_static_plugin_t;

/* Ended by an entry with name NULL; only that entry in a shared build. */
extern const duet_static_plugin_t duet__static_plugins[];

#endif
