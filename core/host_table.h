/* The host table: every function a plugin may call (duet/plugin.h's
 * duet_host_t), checked against the connection table by id, and the
 * timers and fd watches plugins start. It calls into the plugin chain
 * (plugins.h) for events and option defaults, never the other way round:
 * the chain gets this table from server.c. */
#ifndef DUET_HOST_TABLE_H
#define DUET_HOST_TABLE_H

#include <stdint.h>

#include <uv.h>

#include "duet/plugin.h"
#include "options.h"

struct duet_conns;
struct duet_metrics;
struct host_timer;
struct host_fd_watch;

/* What host calls work on: plugins send through the connection table, time
 * with the loop, count in the metrics. */
typedef struct duet_host_env {
  uv_loop_t *loop;
  struct duet_conns *conns;
  struct duet_metrics *metrics;
  const duet_options_t *opt;
  const int *listen_port; /* the main listener's port once bound, else 0 */
  /* Called when the last hold on the exit (hold_exit) is let go. */
  void (*exit_released)(void *data);
  void *exit_data;
} duet_host_env_t;

/* While set, events a plugin emits whose name starts "admin." go to it
 * instead of the chain: how plugins add what they know to an admin
 * listing (admin_api.c). plugin is the emitting plugin's name. */
typedef void (*duet_host_collect_fn)(void *data, const char *plugin, const duet_event_t *event);

typedef struct duet_host_state {
  duet_host_env_t env;
  duet_host_collect_fn collect;
  void *collect_data;
  struct host_timer *timers;
  int64_t next_timer_id;
  struct host_fd_watch *fd_watches;
  int64_t next_fd_watch_id;
  size_t exit_holds; /* every plugin's hold_exit, together */
} duet_host_state_t;

/* The table handed to every plugin's init, with a ctx naming the plugin. */
extern const duet_host_t duet__host_table;

void duet__host_init(duet_host_state_t *host, const duet_host_env_t *env);
/* Stops every timer and fd watch plugins left running; their handles close
 * on the loop. Call after the plugins' shutdown, before their code is
 * unloaded. */
void duet__host_release(duet_host_state_t *host);

#endif
