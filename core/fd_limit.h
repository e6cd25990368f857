/* The open-files limit: every connection, handshake in flight, listener and
 * log file is a descriptor, and a limit too low for --max-connections makes
 * the server refuse clients long before its own limits do. */
#ifndef DUET_FD_LIMIT_H
#define DUET_FD_LIMIT_H

#include <stddef.h>

/* Descriptors beyond one per WebSocket: TLS handshakes and HTTP requests in
 * flight, listeners, the event loop's own, plugins' files. */
#define DUET_FD_HEADROOM 240

/* The soft limit is raised no higher than this, or what --max-connections
 * needs if that is more. */
#define DUET_FD_SOFT_CAP 65536

/* Raises the soft RLIMIT_NOFILE to the hard limit (at most DUET_FD_SOFT_CAP,
 * or what max_connections needs if more), logs the limit it got,
 * and warns (saying how to raise it) when that is below what
 * max_connections needs. Returns the limit now in force. Call it before
 * libwebsockets starts: lws sizes its tables by the limit it finds. */
size_t duet__fd_limit_raise(size_t max_connections);

#endif
