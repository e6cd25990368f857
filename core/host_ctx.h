/* The handle a plugin passes to every host call (duet_host_ctx_t): made by
 * plugins.c for each plugin it loads, read by host_table.c to know who is
 * calling. Private to those two. */
#ifndef DUET_HOST_CTX_H
#define DUET_HOST_CTX_H

#include <stddef.h>

#include "duet/plugin.h"
#include "log.h"

struct duet_plugins;
struct duet_host_state;

struct duet_host_ctx {
  struct duet_host_state *host; /* what host calls work on (host_table.h) */
  struct duet_plugins *plugins; /* the chain, for emit */
  const duet_plugin_t *desc;    /* the calling plugin's descriptor */
  size_t index;                 /* its place in the chain: its slot of per-connection data */
  const char *name;
  int initialized; /* its init returned 0 and shutdown has not run */
  /* A plugin may log per connection (a timeout per connection): a flood of
   * clients must not become a flood of lines. */
  duet_log_limit_t log_limit;
  duet_log_limit_t error_limit; /* errors are not crowded out by a flood of info lines */
  int degraded;                 /* set_health */
  unsigned exit_holds;          /* hold_exit */
  char health_reason[128];
};

/* A field of a plugin struct may be read only when the plugin's struct_size
 * covers it: an older plugin's struct is shorter. */
#define HAS_FIELD(desc, field) ((desc)->struct_size >= offsetof(duet_plugin_t, field) + sizeof((desc)->field))
#define OPTIONAL(desc, field) (HAS_FIELD(desc, field) ? (desc)->field : NULL)

#endif
