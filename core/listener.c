/* accept4() is a GNU extension. */
#define _GNU_SOURCE
#include "listener.h"

#include "duet_build_config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "log.h"

/* Bounded work per wake-up keeps one busy listener from starving the loop. */
#define ACCEPTS_PER_WAKE 64

/* Out of descriptors, the listener stays readable while connections wait:
 * it pauses instead, this long at first, doubling while it lasts. */
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 800

static void on_readable(uv_poll_t *poll, int status, int events);

/* At ENFILE another process may take the slot the reserve left: try again
 * whenever accepting resumes. */
static void reopen_reserve(duet_listener_t *l) {
  if (l->reserve_fd < 0)
    l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void resume_accepting(uv_timer_t *timer) {
  duet_listener_t *l = timer->data;
  reopen_reserve(l);
  if (l->open)
    uv_poll_start(&l->poll, UV_READABLE, on_readable);
}

/* libuv's answer to EMFILE: a descriptor kept in reserve is given up for a
 * moment to accept the waiting connections and close them at once, so
 * clients hear "no" instead of hanging in the backlog. */
static unsigned shed_waiting(duet_listener_t *l) {
  unsigned shed = 0;
  if (l->reserve_fd < 0)
    return 0;
  close(l->reserve_fd);
  l->reserve_fd = -1;
  for (; shed < ACCEPTS_PER_WAKE; shed++) {
    int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
      break;
    close(fd);
  }
  reopen_reserve(l);
  return shed;
}

static void out_of_descriptors(duet_listener_t *l, int error) {
  unsigned shed = shed_waiting(l);
  l->shed += shed;
  l->pauses++;
  l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : BACKOFF_MIN_MS;
  if (l->backoff_ms > BACKOFF_MAX_MS)
    l->backoff_ms = BACKOFF_MAX_MS;
  DUET_WARN_LIMITED("out of file descriptors",
                    "cannot accept connections: %s; closed %u waiting connection(s), pausing for %u ms "
                    "(raise the open-files limit, e.g. LimitNOFILE= in the systemd unit or ulimit -n, or "
                    "lower --max-connections)",
                    error == ENFILE ? "the system's open-files table is full" : "duetd's open-files limit is reached",
                    shed, l->backoff_ms);
  uv_poll_stop(&l->poll);
  uv_timer_start(&l->backoff_timer, resume_accepting, l->backoff_ms, 0);
}

static void on_readable(uv_poll_t *poll, int status, int events) {
  duet_listener_t *l = poll->data;
  (void)events;
  if (status < 0)
    return;
  for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE)
        out_of_descriptors(l, errno);
      return; /* EAGAIN: drained; anything else: try again on the next wake */
    }
    l->backoff_ms = 0;
    reopen_reserve(l);
    /* Signaling messages are small and latency matters: no Nagle delay
     * (measured by tests/bench/run: p99 at 5,000 msg/s from 41 ms to ~1 ms). */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* A peer that vanishes without FIN or RST (power cut, NAT timeout) is
     * found by the kernel even when no plugin pings: probes after 5 idle
     * minutes, every 30 s, 4 tries. Costs nothing while traffic flows. */
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
#ifdef TCP_KEEPIDLE
    int idle_s = 300, interval_s = 30, probes = 4;
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof idle_s);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval_s, sizeof interval_s);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
#endif
    lws_sock_file_fd_type desc;
    desc.sockfd = fd;
    struct lws *wsi = lws_adopt_descriptor_vhost(
        l->vhost, LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP | (l->plain_http ? 0 : LWS_ADOPT_ALLOW_SSL), desc, NULL, NULL);
    if (!wsi) {
      /* lws closes fd itself when adoption fails: most often a TLS
       * handshake that failed at once (its ClientHello had arrived). */
      l->refused++;
      DUET_WARN_LIMITED("connection dropped on adoption",
                        "dropped a new connection: its TLS handshake failed at once, or libwebsockets could not "
                        "take it (out of memory or descriptors)");
      continue;
    }
    if (l->tag)
      lws_set_opaque_user_data(wsi, l->tag);
    l->accepted++;
  }
}

static int bind_one(const struct sockaddr *sa, socklen_t len, int v6only, unsigned flags) {
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  /* Only workers share a port: a second duetd started by mistake on the
   * same port must still fail to bind. */
  if ((flags & DUET_LISTENER_REUSEPORT) && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  if (sa->sa_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
  if (bind(fd, sa, len) != 0 || (!(flags & DUET_LISTENER_HOLD) && listen(fd, 511) != 0)) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

/* Binds the wildcard address: one dual-stack socket for IPv4 and IPv6, or
 * IPv4 alone. Returns the fd or a negative errno. */
static int bind_any(int port, unsigned flags) {
  /* One dual-stack socket serves IPv4 and IPv6; without IPv6, IPv4 alone. */
#if DUET_WITH_IPV6
  struct sockaddr_in6 any6;
  memset(&any6, 0, sizeof any6);
  any6.sin6_family = AF_INET6;
  any6.sin6_addr = in6addr_any;
  any6.sin6_port = htons((uint16_t)port);
  int fd = bind_one((struct sockaddr *)&any6, sizeof any6, 0, flags);
#else
  /* Built with -Dipv6=false: IPv4 alone. */
  int fd = -EAFNOSUPPORT;
#endif
  if (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL) {
    struct sockaddr_in any4;
    memset(&any4, 0, sizeof any4);
    any4.sin_family = AF_INET;
    any4.sin_addr.s_addr = htonl(INADDR_ANY);
    any4.sin_port = htons((uint16_t)port);
    fd = bind_one((struct sockaddr *)&any4, sizeof any4, 0, flags);
  }
  return fd;
}

/* Binds the given address (a numeric IP or a local host name). A name that
 * does not resolve fills err. */
static int bind_address(const char *address, int port, unsigned flags, char *err, size_t err_len) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  char service[8];
  snprintf(service, sizeof service, "%d", port);
  int gai = getaddrinfo(address, service, &hints, &res);
  if (gai != 0) {
    snprintf(err, err_len, "cannot listen on address \"%s\": %s (give an IP address or a local host name)", address,
             gai_strerror(gai));
    return -EINVAL;
  }
  int fd = bind_one(res->ai_addr, res->ai_addrlen, 1, flags);
  freeaddrinfo(res);
  return fd;
}

int duet__listener_bind(const char *address, int port, unsigned flags, int *bound_port, char *err, size_t err_len) {
  err[0] = '\0';
  int fd = address ? bind_address(address, port, flags, err, err_len) : bind_any(port, flags);
  if (fd < 0 && err[0])
    return fd; /* err says why */
  if (fd < 0) {
    snprintf(err, err_len, "cannot listen on %s port %d: %s%s", address ? address : "every address", port,
             strerror(-fd),
             fd == -EADDRINUSE ? " (another program uses this port: stop it or choose another --port)"
             : fd == -EACCES   ? " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
                               : "");
    return fd;
  }
  struct sockaddr_storage bound;
  socklen_t bound_len = sizeof bound;
  memset(&bound, 0, sizeof bound);
  if (getsockname(fd, (struct sockaddr *)&bound, &bound_len) != 0)
    bound.ss_family = AF_UNSPEC; /* the port stays 0 in the log: harmless */
  *bound_port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
  return fd;
}

int duet__listener_open(duet_listener_t *l, uv_loop_t *loop, struct lws_vhost *vhost, const char *address, int port,
                        int *bound_port, char *err, size_t err_len) {
  int plain_http = l->plain_http;
  int reuseport = l->reuseport;
  void *tag = l->tag;
  memset(l, 0, sizeof *l);
  l->plain_http = plain_http;
  l->reuseport = reuseport;
  l->tag = tag;
  l->fd = -1;
  l->reserve_fd = -1;
  l->vhost = vhost;
  int fd = duet__listener_bind(address, port, reuseport ? DUET_LISTENER_REUSEPORT : 0, bound_port, err, err_len);
  if (fd < 0)
    return fd;
  l->fd = fd;
  int r = uv_poll_init_socket(loop, &l->poll, fd);
  if (r != 0) {
    close(fd);
    l->fd = -1;
    snprintf(err, err_len, "cannot watch the listening socket: %s", uv_strerror(r));
    return r;
  }
  l->poll.data = l;
  uv_timer_init(loop, &l->backoff_timer);
  l->backoff_timer.data = l;
  l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  l->open = 1;
  uv_poll_start(&l->poll, UV_READABLE, on_readable);
  return 0;
}

static void on_closed(uv_handle_t *handle) {
  duet_listener_t *l = handle->data;
  close(l->fd);
  l->fd = -1;
  if (l->reserve_fd >= 0)
    close(l->reserve_fd);
  l->reserve_fd = -1;
}

void duet__listener_close(duet_listener_t *l) {
  if (!l->open)
    return;
  l->open = 0;
  uv_poll_stop(&l->poll);
  uv_close((uv_handle_t *)&l->backoff_timer, NULL);
  uv_close((uv_handle_t *)&l->poll, on_closed);
}
