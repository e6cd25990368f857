/* Who this process is among the nodes of a cluster: one name, computed
 * here only, for the plugins (host node_info) and the supervisor's log. */
#ifndef DUET_NODE_IDENTITY_H
#define DUET_NODE_IDENTITY_H

#include <stddef.h>

#include "options.h"

/* Writes --node-id, else HOST:PORT, with "-wK" appended in worker K, to
 * buf (always NUL-terminated, cut to len). */
void duet__node_id(const duet_options_t *opt, int port, char *buf, size_t len);

#endif
