/* What plugins.c (loading, dispatch) and host_table.c (the functions
 * plugins call) share: the plugin chain's own structures. Private to them. */
#ifndef DUET_PLUGINS_INTERNAL_H
#define DUET_PLUGINS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "duet/plugin.h"
#include "log.h"
#include "plugins.h"

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
  int degraded; /* set_health */
  char health_reason[128];
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

typedef struct host_fd_watch {
  uv_poll_t handle;
  int64_t id;
  int fd;
  size_t plugin;
  duet_plugins_t *plugins;
  duet_fd_cb cb;
  void *userdata;
  struct host_fd_watch *prev, *next;
} host_fd_watch_t;

struct duet_plugins {
  plugin_t *list;
  size_t count;
  duet_plugins_env_t env;
  const duet_options_t *opt;
  host_timer_t *timers;
  int64_t next_timer_id;
  host_fd_watch_t *fd_watches;
  int64_t next_fd_watch_id;
};

/* A field of a plugin struct may be read only when the plugin's struct_size
 * covers it: an older plugin's struct is shorter. */
#define HAS_FIELD(desc, field) ((desc)->struct_size >= offsetof(duet_plugin_t, field) + sizeof((desc)->field))
#define OPTIONAL(desc, field) (HAS_FIELD(desc, field) ? (desc)->field : NULL)

/* Entries of an ABI 1.0-1.2 options array end where 1.3 appended flag. */
#define OPTION_SIZE_1_0 offsetof(duet_plugin_option_t, flag)

/* The table handed to every plugin's init. */
extern const duet_host_t duet__host_table;
/* Stops a plugin timer and frees it once its handle has closed. */
void duet__host_timer_free(duet_plugins_t *plugins, host_timer_t *t);
/* Stops an fd watch and frees it once its handle has closed. */
void duet__host_fd_watch_free(duet_plugins_t *plugins, host_fd_watch_t *w);

#endif
