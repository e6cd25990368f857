/* The plugin chain: loading (shared modules or linked-in), the host table
 * plugins call, and dispatch of connection events in load order. */
#ifndef DUET_PLUGINS_H
#define DUET_PLUGINS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "duet/plugin.h"
#include "options.h"

#ifdef __cplusplus
extern "C" {
#endif

struct duet_conns;
struct duet_metrics;

typedef struct duet_plugins duet_plugins_t;

/* What the host table works on: plugins send through the connection table,
 * time with the loop, count in the metrics. */
typedef struct duet_plugins_env {
  uv_loop_t *loop;
  struct duet_conns *conns;
  struct duet_metrics *metrics;
  const int *listen_port; /* the main listener's port once bound, else 0 */
} duet_plugins_env_t;

/* Loads every plugin the options name, checks ABI versions and options,
 * and calls each init. On failure writes a sentence to err and returns a
 * negative error; a usage error (unknown --plugin-opt key) returns -2. */
int duet__plugins_load(duet_plugins_t **out, const duet_plugins_env_t *env, const duet_options_t *opt, char *err,
                       size_t err_len);
size_t duet__plugins_count(const duet_plugins_t *plugins);
/* Prints "name version  description" per plugin, with its options. */
void duet__plugins_print(const duet_plugins_t *plugins);

/* A bundled plugin's descriptor, read before any plugin is loaded so the
 * command line can offer its shorthand flags and commands: found among the
 * linked-in plugins (static builds) or dlopened like a load would, calling
 * only the entry function (never init). */
typedef struct duet_plugin_peek duet_plugin_peek_t;
int duet__plugins_peek(const char *name, duet_plugin_peek_t **out, char *err, size_t err_len);
const duet_plugin_t *duet__plugins_peek_descriptor(const duet_plugin_peek_t *peek);
/* Unloads what duet__plugins_peek opened; the descriptor is gone then. */
void duet__plugins_peek_close(duet_plugin_peek_t *peek);

/* Copies option i of desc into out, honouring the entry size the plugin
 * was built with (fields its ABI lacks read as zero). Returns 1, or 0 past
 * the last option. */
int duet__plugins_option(const duet_plugin_t *desc, size_t i, duet_plugin_option_t *out);
/* Command i of desc, or NULL past the last (or for a malformed entry). */
const duet_plugin_command_t *duet__plugins_command(const duet_plugin_t *desc, size_t i);

void duet__plugins_on_open(duet_plugins_t *plugins, uint64_t conn);
/* Offers msg to each plugin in order. Returns DUET_HANDLED, or DUET_REJECT
 * with reject filled (also when nobody handled it: "unknown-type"). */
duet_verdict_t duet__plugins_on_message(duet_plugins_t *plugins, uint64_t conn, const duet_msg_t *msg,
                                        duet_reject_t *reject);
/* Delivers an event to every plugin, in load order. */
void duet__plugins_emit(duet_plugins_t *plugins, const duet_event_t *event);
void duet__plugins_on_close(duet_plugins_t *plugins, uint64_t conn, duet_close_reason_t reason);
/* 1 when a plugin said it is degraded (set_health), with the reasons
 * ("name: reason; ...") in reasons; else 0. */
int duet__plugins_degraded(const duet_plugins_t *plugins, char *reasons, size_t len);
/* Calls every shutdown, stops the plugins' timers and unloads modules.
 * Timer handles close on the loop: run it once more before closing it. */
void duet__plugins_unload(duet_plugins_t *plugins);

#ifdef __cplusplus
}
#endif

#endif
