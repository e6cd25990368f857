/* /healthz and /metrics, answered from the server's health and the
 * metrics registry; no HTTP here (http_static.c sends the answer). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin_http.h"

#include "duet_build_config.h"

#include "message.h"

static int healthz(const duet_admin_http_t *admin, FILE *out) {
  duet_health_t health;
  memset(&health, 0, sizeof health);
  admin->health(admin->health_data, &health);
  const char *status = health.stopping   ? "stopping"
                       : health.draining ? "draining"
                       : health.degraded ? "degraded"
                                         : "ok";
  /* pid: which worker answered, under --workers. */
  fprintf(out, "{\"status\":\"%s\",\"connections\":%zu,\"uptime_s\":%.3f,\"pid\":%ld", status, health.connections,
          health.uptime_s, (long)getpid());
  if (health.degraded && !health.stopping && !health.draining) {
    health.degraded_reasons[sizeof health.degraded_reasons - 1] = '\0';
    char reasons[sizeof health.degraded_reasons * 6 + 3];
    duet__json_escape(reasons, sizeof reasons, health.degraded_reasons);
    fprintf(out, ",\"degraded\":%s", reasons);
  }
  fputs("}\n", out);
  return health.stopping || health.draining;
}

int duet__admin_http_answer(const duet_admin_http_t *admin, const char *uri, duet_admin_answer_t *answer) {
  int is_health = strcmp(uri, "/healthz") == 0 && admin->opt->health;
  int is_metrics = DUET_WITH_METRICS && strcmp(uri, "/metrics") == 0 && admin->opt->metrics;
  if (!is_health && !is_metrics)
    return 0;
  char *body = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&body, &len);
  if (!out)
    return DUET_ENOMEM;
  int stopping = 0;
  if (is_health)
    stopping = healthz(admin, out);
#if DUET_WITH_METRICS
  else
    duet__metrics_render(admin->metrics, out);
#endif
  if (fclose(out) != 0) {
    free(body);
    return DUET_ENOMEM;
  }
  answer->status = stopping ? 503 : 200;
  answer->authenticate = 0;
  answer->content_type = is_health ? "application/json" : "text/plain; version=0.0.4; charset=utf-8";
  answer->body = body;
  answer->len = len;
  return 1;
}
