/* TLS material and policy: which certificate (the user's or a development
 * one made on first run), the protocol versions and suites, and reloading
 * the pair on SIGHUP without dropping open connections. */
#ifndef DUET_TLS_CONFIG_H
#define DUET_TLS_CONFIG_H

#include <limits.h>
#include <stdbool.h>

#include "options.h"

struct lws_context_creation_info;
struct ssl_ctx_st;

typedef struct duet_tls {
  const duet_options_t *opt;
  char cert_path[PATH_MAX];
  char key_path[PATH_MAX];
  char state_dir[PATH_MAX];   /* where a development certificate lives */
  bool dev_cert;              /* cert_path is one we made */
  struct ssl_ctx_st *ssl_ctx; /* the vhost's, once lws made it */
} duet_tls_t;

/* Decides the certificate pair: opt's, or a development certificate in the
 * state folder, made when missing (and says so in the log). Returns 0, or
 * -1 after logging why. Without TLS (--no-tls) it only notes the state folder. */
int duet__tls_prepare(duet_tls_t *tls, const duet_options_t *opt);
/* The private key and the state folder, for the check that no served
 * folder holds them; NULL where there is none. */
const char *duet__tls_key_path(const duet_tls_t *tls);
const char *duet__tls_secret_dir(const duet_tls_t *tls);
/* Fills the TLS fields of lws's creation info (files, suites, options). */
void duet__tls_configure(const duet_tls_t *tls, struct lws_context_creation_info *info);
/* Takes the vhost's SSL_CTX when lws offers it (protocols[0], reason
 * LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS) and tunes it. */
void duet__tls_adopt_ssl_ctx(duet_tls_t *tls, struct ssl_ctx_st *ctx);
/* Re-reads the pair: new handshakes use it, open connections keep theirs.
 * A pair that does not load or match is refused whole (logged). */
void duet__tls_reload(duet_tls_t *tls);

#endif
