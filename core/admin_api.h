/* The admin API, on the --admin-listen socket only and only with
 * --admin-token-file: every request carries "Authorization: Bearer TOKEN".
 *   GET  /admin/connections                 who is connected (and, from the
 *                                           plugins, in which calls)
 *   POST /admin/connections/ID/close?reason=TEXT
 *                                           the client is told TEXT
 *                                           (closed-by-admin), then closed
 *   POST /admin/drain                       as SIGUSR1
 * Answers are JSON. What plugins know of a connection (a routing plugin:
 * its ids and partner) comes from the "admin.connection" and "admin.call" events
 * they emit in reply to "duet.admin.list" (host_table.h, collect). */
#ifndef DUET_ADMIN_API_H
#define DUET_ADMIN_API_H

#include <stddef.h>
#include <stdint.h>

#include "admin_http.h"

struct duet_conns;
struct duet_plugins;
struct duet_host_state;

typedef struct duet_admin_api {
  const char *token; /* NULL: the API is off (404) */
  size_t token_len;
  struct duet_conns *conns;
  struct duet_plugins *plugins;
  struct duet_host_state *host;
  const char *node_id;
  uint64_t (*now_ms)(void *data); /* the loop's clock, for idle times */
  void (*drain)(void *data);
  void *data;
  uint64_t listed, closed, drains, refused; /* answered requests, by kind; refused: a bad or missing token */
} duet_admin_api_t;

/* An admin request, as the HTTP unit read it. */
typedef struct duet_admin_request {
  int post;                  /* POST, else GET */
  const char *path;          /* without the query */
  const char *reason;        /* the reason= argument, URL-decoded, or NULL */
  const char *authorization; /* the header's value, or NULL */
  int too_long;              /* the query was longer than a reason may be */
} duet_admin_request_t;

/* Answers req when its path is under /admin/: 1 with answer filled (its
 * body malloc'ed); 0 when the path is not the API's; DUET_ENOMEM. */
int duet__admin_api_answer(duet_admin_api_t *api, const duet_admin_request_t *req, duet_admin_answer_t *answer);

/* The API's counters in /metrics. Returns 0 or a DUET_E* code. */
int duet__admin_api_add_metrics(duet_admin_api_t *api, struct duet_metrics *metrics);

#endif
