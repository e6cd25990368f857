#include "fd_limit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "log.h"

/* The kernel's ceiling for any process (fs.nr_open); "unlimited" means this. */
static rlim_t kernel_ceiling(void) {
  unsigned long long n = 0;
  FILE *f = fopen("/proc/sys/fs/nr_open", "r");
  if (f) {
    if (fscanf(f, "%llu", &n) != 1)
      n = 0;
    fclose(f);
  }
  return n ? (rlim_t)n : 1048576;
}

size_t duet__fd_limit_raise(size_t max_connections) {
  struct rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    DUET_WARN("cannot read the open-files limit: %s", strerror(errno));
    return 0;
  }
  rlim_t was = lim.rlim_cur;
  size_t need = max_connections + DUET_FD_HEADROOM;
  rlim_t want = lim.rlim_max == RLIM_INFINITY ? kernel_ceiling() : lim.rlim_max;
  /* libwebsockets 4.1 sizes tables by the limit (about 14 bytes of RSS per
   * descriptor): a hard limit of a million would cost 14 MB on a small board. */
  rlim_t cap = need > DUET_FD_SOFT_CAP ? (rlim_t)need : DUET_FD_SOFT_CAP;
  if (want > cap)
    want = cap;
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < want) {
    struct rlimit raised = {want, lim.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
      lim.rlim_cur = want;
    else
      DUET_WARN("cannot raise the open-files limit from %llu to %llu: %s", (unsigned long long)was,
                (unsigned long long)want, strerror(errno));
  }
  size_t have = lim.rlim_cur == RLIM_INFINITY ? (size_t)want : (size_t)lim.rlim_cur;
  if (have == (size_t)was)
    DUET_INFO("open-files limit: %zu", have);
  else
    DUET_INFO("open-files limit: %zu (raised from %llu)", have, (unsigned long long)was);
  if (have < need)
    DUET_WARN("the open-files limit (%zu) is below what --max-connections %zu needs (about %zu with TLS handshakes "
              "in flight and duetd's own files): connections past it are refused; raise the hard limit (ulimit -Hn "
              "%zu in the shell that starts duetd as root, LimitNOFILE=%zu in a systemd unit, or nofile in "
              "/etc/security/limits.conf) or lower --max-connections",
              have, max_connections, need, need, need);
  return have;
}
