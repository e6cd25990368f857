/* The plugin chain: the loaded modules (plugin_module.c) ordered by stage,
 * started, and handed connections, messages and events in chain order.
 * The functions plugins call are in host_table.c, which calls in here; the
 * chain only hands its table to each plugin's init. */
#ifndef DUET_PLUGINS_H
#define DUET_PLUGINS_H

#include <stddef.h>
#include <stdint.h>

#include "duet/plugin.h"
#include "options.h"

#ifdef __cplusplus
extern "C" {
#endif

struct duet_host_state;

typedef struct duet_plugins duet_plugins_t;

/* Loads every plugin the options name, checks ABI versions and options,
 * orders the chain by stage (and --plugin-stage) and calls each init with
 * table and a ctx on host. On failure writes a sentence to err and returns
 * a negative error: DUET_EINVAL for what the command line must fix (an
 * unknown plugin or option, a bad value a plugin's init refused), others
 * for failures of the environment. *out is set even then: unload it. */
int duet__plugins_load(duet_plugins_t **out, const duet_host_t *table, struct duet_host_state *host,
                       const duet_options_t *opt, char *err, size_t err_len);
size_t duet__plugins_count(const duet_plugins_t *plugins);
/* Prints the chain in order, "N. name version  description  [stage ...]",
 * with each plugin's options. */
void duet__plugins_print(const duet_plugins_t *plugins);

void duet__plugins_on_open(duet_plugins_t *plugins, uint64_t conn);
/* Offers msg to each plugin in order. Returns DUET_HANDLED, or DUET_REJECT
 * with reject filled (also when nobody handled it: "unknown-type"). */
duet_verdict_t duet__plugins_on_message(duet_plugins_t *plugins, uint64_t conn, const duet_msg_t *msg,
                                        duet_reject_t *reject);
/* Delivers an event to every started plugin, in chain order. */
void duet__plugins_emit(duet_plugins_t *plugins, const duet_event_t *event);
void duet__plugins_on_close(duet_plugins_t *plugins, uint64_t conn, duet_close_reason_t reason);
/* 1 when a plugin said it is degraded (set_health), with the reasons
 * ("name: reason; ...") in reasons; else 0. */
int duet__plugins_degraded(const duet_plugins_t *plugins, char *reasons, size_t len);
/* Calls every started plugin's shutdown, last in the chain first. */
void duet__plugins_shutdown(duet_plugins_t *plugins);
/* Unloads the modules and frees the chain; after duet__plugins_shutdown
 * and after the host has stopped the plugins' timers (duet__host_release). */
void duet__plugins_unload(duet_plugins_t *plugins);

#ifdef __cplusplus
}
#endif

#endif
