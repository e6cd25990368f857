#include "node_identity.h"

#include <stdio.h>
#include <unistd.h>

void duet__node_id(const duet_options_t *opt, int port, char *buf, size_t len) {
  char base[300];
  if (opt->node_id && opt->node_id[0]) {
    snprintf(base, sizeof base, "%s", opt->node_id);
  } else {
    char host[256];
    if (gethostname(host, sizeof host) != 0 || !host[0])
      snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(base, sizeof base, "%s:%d", host, port);
  }
  if (opt->worker_index)
    snprintf(buf, len, "%s-w%u", base, opt->worker_index);
  else
    snprintf(buf, len, "%s", base);
}
