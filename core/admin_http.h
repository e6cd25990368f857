/* GET /healthz and GET /metrics: what they answer, built in memory from the
 * server's health and the metrics registry. The HTTP callback
 * (http_static.c) sends the answer; with --admin-listen it asks here only
 * for requests on that socket, which serves nothing else. */
#ifndef DUET_ADMIN_HTTP_H
#define DUET_ADMIN_HTTP_H

#include <stddef.h>

#include "metrics.h"
#include "options.h"

/* What /healthz reports, filled by the server when asked. */
typedef struct duet_health {
  size_t connections; /* WebSocket connections open now */
  double uptime_s;
  int stopping; /* shutting down: 503 "stopping" */
  int draining; /* SIGUSR1: 503 "draining", so balancers send new clients elsewhere */
  int degraded; /* a plugin said so (set_health) */
  char degraded_reasons[512];
} duet_health_t;

typedef struct duet_admin_http {
  const duet_options_t *opt; /* health, metrics: whether each path is served */
  const duet_metrics_t *metrics;
  void (*health)(void *data, duet_health_t *health);
  void *health_data;
} duet_admin_http_t;

typedef struct duet_admin_answer {
  unsigned status; /* 200, or 503 while draining or stopping */
  const char *content_type;
  char *body; /* malloc'ed: the caller frees it */
  size_t len;
  int authenticate; /* a 401 of the admin API: send WWW-Authenticate: Bearer */
} duet_admin_answer_t;

/* Answers a GET of uri when it is /healthz or /metrics and that path is
 * switched on: returns 1 with answer filled; 0 when uri is not one of them
 * (answer untouched); DUET_ENOMEM. */
int duet__admin_http_answer(const duet_admin_http_t *admin, const char *uri, duet_admin_answer_t *answer);

#endif
