/* The listening socket. duetd binds and accepts itself and hands each new
 * socket to libwebsockets: lws 4.1 ignores an IP address given as its
 * listen "interface", and accepting ourselves gives one place to refuse a
 * connection before any TLS work is spent on it. */
#ifndef DUET_LISTENER_H
#define DUET_LISTENER_H

#include <stddef.h>

#include <uv.h>

struct lws_vhost;

typedef struct duet_listener {
  uv_poll_t poll;
  uv_timer_t backoff_timer; /* accepting paused while out of descriptors */
  int fd;
  int reserve_fd; /* given up for a moment to shed connections at EMFILE */
  int open;
  unsigned backoff_ms;
  struct lws_vhost *vhost;
  unsigned long long accepted;
  unsigned long long shed;    /* accepted and closed at once for lack of descriptors */
  unsigned long long pauses;  /* times accepting paused for lack of descriptors */
  unsigned long long refused; /* libwebsockets did not take an accepted socket */
  int plain_http;             /* set before open: no TLS on this socket even if the vhost has it */
  void *tag;                  /* set before open: given to every connection as lws opaque user data */
  int reuseport;              /* set before open: share the port with the other workers (SO_REUSEPORT) */
} duet_listener_t;

/* duet__listener_bind flags. */
#define DUET_LISTENER_REUSEPORT 1u /* SO_REUSEPORT: workers of one supervisor share the port */
#define DUET_LISTENER_HOLD 2u      /* bind without listening: reserves the port, accepts nothing */

/* Binds address (NULL: every address, IPv4 and IPv6) and port (0: any free
 * one) and, unless DUET_LISTENER_HOLD, listens. Writes the bound port to
 * *bound_port. Returns the socket, or a negative errno with err filled. */
int duet__listener_bind(const char *address, int port, unsigned flags, int *bound_port, char *err, size_t err_len);

/* Binds address (NULL: every address, IPv4 and IPv6) and port (0: any free
 * one), listens, and starts accepting on loop into vhost. Writes the bound
 * port to *bound_port. Returns 0 or a negative errno with err filled. */
int duet__listener_open(duet_listener_t *l, uv_loop_t *loop, struct lws_vhost *vhost, const char *address, int port,
                        int *bound_port, char *err, size_t err_len);
/* Stops accepting and closes the socket; safe to call twice. */
void duet__listener_close(duet_listener_t *l);

#endif
