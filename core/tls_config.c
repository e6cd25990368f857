#include "tls_config.h"

#include <stdio.h>
#include <string.h>

/* libwebsockets.h does not include uv.h, yet its libuv parts need it first. */
#include <libwebsockets.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "dev_cert.h"
#include "log.h"
#include "paths.h"

int duet__tls_prepare(duet_tls_t *tls, const duet_options_t *opt) {
  memset(tls, 0, sizeof *tls);
  tls->opt = opt;
  if (opt->state_dir)
    snprintf(tls->state_dir, sizeof tls->state_dir, "%s", opt->state_dir);
  else
    duet__paths_default_state_dir(tls->state_dir, sizeof tls->state_dir);
  if (!opt->tls)
    return 0;
  if (opt->cert) {
    snprintf(tls->cert_path, sizeof tls->cert_path, "%s", opt->cert);
    snprintf(tls->key_path, sizeof tls->key_path, "%s", opt->key);
    return 0;
  }
  int created = 0;
  char err[1024];
  int r = duet__dev_cert_ensure(tls->state_dir, tls->cert_path, sizeof tls->cert_path, tls->key_path,
                                sizeof tls->key_path, &created, err, sizeof err);
  if (r != 0) {
    DUET_ERROR("%s", err);
    return r < 0 ? r : DUET_EIO;
  }
  tls->dev_cert = true;
  DUET_WARN("%s self-signed development certificate %s (key %s): browsers will warn about it; "
            "give --cert and --key for a real one",
            created ? "made a new" : "using the", tls->cert_path, tls->key_path);
  return 0;
}

const char *duet__tls_key_path(const duet_tls_t *tls) { return tls->opt->tls ? tls->key_path : NULL; }

const char *duet__tls_secret_dir(const duet_tls_t *tls) { return tls->dev_cert ? tls->state_dir : NULL; }

void duet__tls_configure(const duet_tls_t *tls, struct lws_context_creation_info *info) {
  if (!tls->opt->tls)
    return;
  /* lws gives each vhost a client SSL_CTX too and fills it with the system CA
   * bundle (~0.9 MB); duetd never connects out. */
  info->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
  info->ssl_cert_filepath = tls->cert_path;
  info->ssl_private_key_filepath = tls->key_path;
  /* TLS 1.2 with forward-secret AEAD suites only, TLS 1.3 preferred;
   * no compression (CRIME) and no renegotiation. */
  info->ssl_cipher_list = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                          "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                          "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
  info->tls1_3_plus_cipher_list = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
  info->ssl_options_set = (long)(SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1);
}

void duet__tls_adopt_ssl_ctx(duet_tls_t *tls, struct ssl_ctx_st *ctx) {
  /* Session tickets cost memory per connection and buy little for
   * long-lived WebSockets. */
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_min_proto_version(ctx, tls->opt->tls_min_13 ? TLS1_3_VERSION : TLS1_2_VERSION);
  tls->ssl_ctx = ctx;
}

void duet__tls_reload(duet_tls_t *tls) {
  if (!tls->ssl_ctx || !tls->cert_path[0])
    return;
  SSL_CTX *check = SSL_CTX_new(TLS_server_method());
  int ok = check && SSL_CTX_use_certificate_chain_file(check, tls->cert_path) == 1 &&
           SSL_CTX_use_PrivateKey_file(check, tls->key_path, SSL_FILETYPE_PEM) == 1 &&
           SSL_CTX_check_private_key(check) == 1;
  SSL_CTX_free(check);
  if (!ok) {
    DUET_ERROR("SIGHUP: the certificate %s or key %s does not load or they do not match; still using the old pair",
               tls->cert_path, tls->key_path);
    return;
  }
  if (SSL_CTX_use_certificate_chain_file(tls->ssl_ctx, tls->cert_path) != 1 ||
      SSL_CTX_use_PrivateKey_file(tls->ssl_ctx, tls->key_path, SSL_FILETYPE_PEM) != 1) {
    DUET_ERROR("SIGHUP: loading %s failed after it checked out; new handshakes may fail", tls->cert_path);
    return;
  }
  DUET_INFO("SIGHUP: new TLS handshakes use %s; open connections keep their certificate", tls->cert_path);
}
