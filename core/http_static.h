/* HTTP: static files from the mounts, and the redirect socket (HTTPS
 * redirects, ACME challenges); /healthz and /metrics are routed to
 * admin_http.c. Each request is answered from what duet_http_t holds; the
 * server fills it at start. */
#ifndef DUET_HTTP_STATIC_H
#define DUET_HTTP_STATIC_H

#include <stddef.h>

#include "admin_http.h"
#include "mounts.h"
#include "options.h"

struct lws;

typedef struct duet_http {
  const duet_options_t *opt;
  const duet_mounts_t *mounts;
  const duet_admin_http_t *admin;   /* /healthz and /metrics */
  struct duet_admin_api *admin_api; /* /admin/..., on the admin socket only */
  const void *admin_tag;            /* connections of --admin-listen carry it; NULL: no admin socket */
  const void *redirect_tag;         /* connections of --http-redirect-port carry it; NULL: none */
  int public_port;                  /* where redirects point */
} duet_http_t;

/* The lws callback of the "http" protocol, with http as its context. */
int duet__http_static_callback(const duet_http_t *http, struct lws *wsi, int reason, void *user, void *in, size_t len);
/* Bytes lws keeps per HTTP connection for us. */
size_t duet__http_static_session_size(void);

#endif
