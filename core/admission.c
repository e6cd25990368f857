#include "admission.h"

#include <stdio.h>
#include <string.h>

#include <libwebsockets.h>

#include "log.h"

/* Connections wait in arrival order, so the oldest is at the head: each
 * tick looks only at those whose time is up. */
static void check_open_timeouts(uv_timer_t *timer) {
  duet_admission_t *a = timer->data;
  uint64_t now = uv_now(a->loop), limit = (uint64_t)(a->opt->open_timeout_s * 1000.0);
  while (a->waiting_head && now - a->waiting_head->opened_ms >= limit) {
    duet_admission_slot_t *slot = a->waiting_head;
    duet__admission_ready(a, slot);
    a->on_timeout(a->data, slot->conn);
  }
}

void duet__admission_init(duet_admission_t *a, uv_loop_t *loop, const duet_options_t *opt, duet_label_counts_t *errors,
                          void (*on_timeout)(void *data, duet_conn_t *conn), void *data) {
  memset(a, 0, sizeof *a);
  a->opt = opt;
  a->loop = loop;
  a->errors = errors;
  a->on_timeout = on_timeout;
  a->data = data;
  uv_timer_init(loop, &a->open_timer);
  a->open_timer.data = a;
  uint64_t tick = (uint64_t)(opt->open_timeout_s * 1000.0 / 4);
  uv_timer_start(&a->open_timer, check_open_timeouts, tick ? tick : 1, tick ? tick : 1);
}

void duet__admission_close(duet_admission_t *a) {
  if (a->loop)
    uv_close((uv_handle_t *)&a->open_timer, NULL);
  a->loop = NULL;
}

void duet__admission_destroy(duet_admission_t *a) { duet__ip_table_destroy(&a->ips); }

/* Cross-site WebSocket hijacking: a browser page from another origin must
 * not reach signaling with the user's network position. Clients that send no
 * Origin are not browsers and cannot be abused this way. */
static bool origin_allowed(duet_admission_t *a, struct lws *wsi) {
  const duet_options_t *opt = a->opt;
  char origin[256], host[256], own[300];
  int n = lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN);
  if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) <= 0 || opt->allow_any_origin)
    return true;
  if (n <= 0)
    goto refuse; /* longer than any origin we could allow */
  for (size_t i = 0; i < opt->allow_origin_count; i++)
    if (strcmp(origin, opt->allow_origins[i]) == 0)
      return true;
  if (lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST) > 0) {
    /* Behind a TLS proxy (--no-tls) the page is https although we are not. */
    snprintf(own, sizeof own, "https://%s", host);
    if (strcmp(origin, own) == 0)
      return true;
    snprintf(own, sizeof own, "http://%s", host);
    if (!opt->tls && strcmp(origin, own) == 0)
      return true;
  }
refuse:
  DUET_WARN_LIMITED("refused origin", "refused a WebSocket from origin %.100s (allow it with --allow-origin)",
                    n > 0 ? origin : "(too long)");
  duet__label_counts_add(a->errors, "origin-refused");
  return false;
}

bool duet__admission_upgrade_allowed(duet_admission_t *a, struct lws *wsi) {
  /* lws 4.1 upgrades odd requests too: RFC 6455 wants a GET with version 13. */
  char version[8] = "";
  if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0 ||
      lws_hdr_copy(wsi, version, sizeof version, WSI_TOKEN_VERSION) <= 0 || strcmp(version, "13") != 0)
    return false;
  return origin_allowed(a, wsi);
}

const char *duet__admission_admit(duet_admission_t *a, size_t live, duet_conn_t *conn, duet_admission_slot_t *slot,
                                  char *text, size_t text_len) {
  const duet_options_t *opt = a->opt;
  slot->conn = conn;
  slot->opened_ms = uv_now(a->loop);
  slot->ip = duet__ip_table_acquire(&a->ips, conn->addr);
  char name[64];
  slot->ready = true; /* a refused connection never waits */
  if (live > opt->max_connections) {
    snprintf(text, text_len, "This server is at its limit of %zu connections; try again later.", opt->max_connections);
    DUET_WARN_LIMITED("server full", "connection %s refused: server-full", duet__conn_name(conn, name));
    return "server-full";
  }
  if (slot->ip && slot->ip->count > opt->max_connections_per_ip) {
    snprintf(text, text_len, "Your address already has %zu connections, this server's limit.",
             opt->max_connections_per_ip);
    DUET_WARN_LIMITED("too many connections from one address", "connection %s refused: too-many-connections",
                      duet__conn_name(conn, name));
    return "too-many-connections";
  }
  slot->ready = false;
  slot->prev = a->waiting_tail;
  if (a->waiting_tail)
    a->waiting_tail->next = slot;
  else
    a->waiting_head = slot;
  a->waiting_tail = slot;
  return NULL;
}

void duet__admission_ready(duet_admission_t *a, duet_admission_slot_t *slot) {
  if (slot->ready)
    return;
  slot->ready = true;
  if (slot->prev)
    slot->prev->next = slot->next;
  else
    a->waiting_head = slot->next;
  if (slot->next)
    slot->next->prev = slot->prev;
  else
    a->waiting_tail = slot->prev;
  slot->prev = slot->next = NULL;
}

void duet__admission_release(duet_admission_t *a, duet_admission_slot_t *slot) {
  if (!slot->conn)
    return; /* never admitted */
  duet__admission_ready(a, slot);
  if (slot->ip)
    duet__ip_table_release(&a->ips, slot->ip);
  slot->ip = NULL;
}
