#include "dev_cert.h"

#include "state_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

#define CERT_NAME "dev-cert.pem"
#define KEY_NAME "dev-key.pem"
/* Held while a pair is checked and made (state_dir.h). */
#define LOCK_NAME "dev-cert.lock"
#define VALID_DAYS 397
/* Backdating lets clients whose clock runs a little behind accept the cert. */
#define BACKDATE_SECONDS 3600
/* Renewing a day early keeps a running server from crossing the expiry. */
#define RENEW_MARGIN_SECONDS 86400

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

static void set_err(char *err, size_t err_len, const char *fmt, ...) PRINTF_LIKE(3, 4);

static void set_err(char *err, size_t err_len, const char *fmt, ...) {
  va_list ap;

  if (!err || err_len == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(err, err_len, fmt, ap);
  va_end(ap);
}

/* Takes the most specific OpenSSL error for a message and empties the queue
 * so a stale error cannot be blamed on a later, unrelated call. */
static const char *ssl_reason(char *buf, size_t len) {
  unsigned long e = ERR_peek_last_error();

  if (e == 0)
    snprintf(buf, len, "no reason given by OpenSSL");
  else
    ERR_error_string_n(e, buf, len);
  ERR_clear_error();
  return buf;
}

/* LDH rule of RFC 1123: labels of letters, digits and hyphens, no hyphen at
 * either end. A numeric last label is refused since it looks like an IP. */
static int is_dns_name(const char *s) {
  size_t total = strlen(s);
  size_t label = 0;
  int label_has_alpha = 0;
  char prev = '.';
  const char *p;

  if (total == 0 || total > 253)
    return 0;
  for (p = s; *p; p++) {
    char c = *p;

    if (c == '.') {
      if (label == 0 || prev == '-')
        return 0;
      label = 0;
      label_has_alpha = 0;
    } else if (c == '-') {
      if (label == 0)
        return 0;
      label++;
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      label++;
      label_has_alpha = 1;
    } else if (c >= '0' && c <= '9') {
      label++;
    } else {
      return 0;
    }
    if (label > 63)
      return 0;
    prev = c;
  }
  return label > 0 && prev != '-' && label_has_alpha;
}

/* The machine's own name, so that other devices on the LAN can reach the
 * server as https://<hostname>/ once they accept the certificate. */
static int usable_hostname(char *buf, size_t len) {
  if (gethostname(buf, len) != 0)
    return 0;
  buf[len - 1] = '\0'; /* POSIX leaves a truncated name unterminated. */
  if (strcasecmp(buf, "localhost") == 0)
    return 0;
  return is_dns_name(buf);
}

static int push_name(GENERAL_NAMES *names, int type, const char *value) {
  ASN1_STRING *str = NULL;
  GENERAL_NAME *gn = NULL;

  if (type == GEN_DNS) {
    str = ASN1_IA5STRING_new();
    if (!str || !ASN1_STRING_set(str, value, -1))
      goto fail;
  } else {
    str = a2i_IPADDRESS(value);
    if (!str)
      goto fail;
  }
  gn = GENERAL_NAME_new();
  if (!gn)
    goto fail;
  GENERAL_NAME_set0_value(gn, type, str);
  str = NULL;
  if (!sk_GENERAL_NAME_push(names, gn))
    goto fail;
  return 1;

fail:
  ASN1_STRING_free(str);
  GENERAL_NAME_free(gn);
  return 0;
}

/* Built from GENERAL_NAME values rather than a config string so that a
 * hostname can never inject extra entries. */
static int add_san(X509 *x) {
  GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
  char host[256];
  int ok;

  if (!names)
    return 0;
  ok = push_name(names, GEN_DNS, "localhost");
  if (ok && usable_hostname(host, sizeof(host)))
    ok = push_name(names, GEN_DNS, host);
  ok = ok && push_name(names, GEN_IPADD, "127.0.0.1");
  ok = ok && push_name(names, GEN_IPADD, "::1");
  ok = ok && X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) == 1;
  GENERAL_NAMES_free(names);
  return ok;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value) {
  X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
  int ok;

  if (!ext)
    return 0;
  ok = X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  return ok;
}

static int set_serial(X509 *x) {
  BIGNUM *bn = BN_new();
  ASN1_INTEGER *serial = NULL;
  int ok = 0;

  if (!bn)
    return 0;
  /* Zero is not a valid serial; the loop almost never repeats. */
  do {
    if (!BN_rand(bn, 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY))
      goto out;
  } while (BN_is_zero(bn));
  serial = BN_to_ASN1_INTEGER(bn, NULL);
  ok = serial && X509_set_serialNumber(x, serial);

out:
  ASN1_INTEGER_free(serial);
  BN_free(bn);
  return ok;
}

static int set_names(X509 *x) {
  X509_NAME *name = X509_get_subject_name(x);

  if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0))
    return 0;
  if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"duet development certificate", -1,
                                  -1, 0))
    return 0;
  return X509_set_issuer_name(x, name);
}

/* Makes a new key and a certificate signed by it. */
static int make_pair(EVP_PKEY **key_out, X509 **cert_out) {
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  X509V3_CTX ctx;

  if (!key || !x)
    goto fail;
  if (!X509_set_version(x, X509_VERSION_3) || !set_serial(x))
    goto fail;
  if (!X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_SECONDS))
    goto fail;
  if (!X509_time_adj_ex(X509_getm_notAfter(x), VALID_DAYS, -BACKDATE_SECONDS, NULL))
    goto fail;
  if (!set_names(x) || !X509_set_pubkey(x, key))
    goto fail;

  /* The subject key identifier hashes the public key, so ctx must know the
   * certificate after its key is set. */
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
  if (!add_san(x) || !add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
      !add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") ||
      !add_ext(x, &ctx, NID_ext_key_usage, "serverAuth") || !add_ext(x, &ctx, NID_subject_key_identifier, "hash"))
    goto fail;
  if (X509_sign(x, key, EVP_sha256()) <= 0)
    goto fail;

  *key_out = key;
  *cert_out = x;
  return 1;

fail:
  X509_free(x);
  EVP_PKEY_free(key);
  return 0;
}

/* Refuses to prompt on the terminal should the key file be encrypted. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
  (void)buf;
  (void)size;
  (void)rwflag;
  (void)u;
  return -1;
}

static X509 *load_cert(const char *path) {
  BIO *b = BIO_new_file(path, "r");
  X509 *x;

  if (!b)
    return NULL;
  x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL);
  BIO_free(b);
  return x;
}

static EVP_PKEY *load_key(const char *path) {
  BIO *b = BIO_new_file(path, "r");
  EVP_PKEY *k;

  if (!b)
    return NULL;
  k = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
  BIO_free(b);
  return k;
}

/* True when both files load, belong together and stay valid for a while. */
static int pair_is_usable(const char *cert_path, const char *key_path) {
  X509 *x = load_cert(cert_path);
  EVP_PKEY *k = x ? load_key(key_path) : NULL;
  time_t now = time(NULL);
  time_t soon = now + RENEW_MARGIN_SECONDS;
  int ok = 0;

  if (x && k && X509_check_private_key(x, k) == 1) {
    /* X509_cmp_time() gives -1 for "at or before", 1 for "after", 0 on a
     * malformed time. */
    ok = X509_cmp_time(X509_get0_notBefore(x), &now) < 0 && X509_cmp_time(X509_get0_notAfter(x), &soon) > 0;
  }
  X509_free(x);
  EVP_PKEY_free(k);
  /* A missing or broken old pair is expected here, not an error. */
  ERR_clear_error();
  return ok;
}

/* Writes each file through a temporary file and rename(), so readers see
 * either the old file or the complete new one, never a half-written one. */
static int write_pair(EVP_PKEY *key, X509 *x, const char *cert_path, const char *key_path, char *err, size_t err_len) {
  /* A secure-memory BIO wipes the private key's PEM text when freed. */
  BIO *kb = BIO_new(BIO_s_secmem());
  BIO *cb = BIO_new(BIO_s_mem());
  char reason[256];
  char *data;
  long n;
  int rc = 0;

  if (!kb || !cb || !PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) || !PEM_write_bio_X509(cb, x)) {
    set_err(err, err_len,
            "Cannot encode the development certificate: %s. This points to a broken OpenSSL install; "
            "reinstall libssl3.",
            ssl_reason(reason, sizeof(reason)));
    rc = -ENOMEM;
    goto out;
  }
  /* The key goes first, so a reader that sees the new certificate (it is
   * read first, see pair_is_usable) sees its key. A crash between the two
   * renames leaves a pair that does not match, which the next start detects
   * and replaces. */
  n = BIO_get_mem_data(kb, &data);
  rc = duet__state_file_write(key_path, 0600, data, (size_t)n, "key", err, err_len);
  if (rc != 0)
    goto out;
  n = BIO_get_mem_data(cb, &data);
  rc = duet__state_file_write(cert_path, 0644, data, (size_t)n, "certificate", err, err_len);

out:
  BIO_free(kb);
  BIO_free(cb);
  return rc;
}

static int join(char *out, size_t out_len, const char *dir, size_t dir_len, const char *name) {
  int n = snprintf(out, out_len, "%.*s/%s", (int)dir_len, dir, name);

  return n >= 0 && (size_t)n < out_len;
}

/* Makes a new pair and renames it into place; *created tells whether it did. */
static int make_and_write(const char *cert_path, const char *key_path, int *created, char *err, size_t err_len) {
  EVP_PKEY *key = NULL;
  X509 *x = NULL;
  char reason[256];
  int rc;

  if (!make_pair(&key, &x)) {
    set_err(err, err_len,
            "Cannot make a development certificate for %s: %s. Check that OpenSSL 3's default provider is "
            "installed (libssl3), or pass your own certificate and key.",
            cert_path, ssl_reason(reason, sizeof(reason)));
    return -EIO;
  }
  /* Temporaries of a writer that died halfway; none are being written now. */
  duet__state_file_remove_temporaries(key_path);
  duet__state_file_remove_temporaries(cert_path);
  rc = write_pair(key, x, cert_path, key_path, err, err_len);
  X509_free(x);
  EVP_PKEY_free(key);
  if (rc == 0)
    *created = 1;
  return rc;
}

/* Under the state folder's lock, so that of several duetd starting at once
 * on one folder only the first makes a pair and the others use it. */
static int make_under_lock(const char *state_dir, size_t dir_len, const char *cert_path, const char *key_path,
                           int *created, char *err, size_t err_len) {
  char lock_path[PATH_MAX];
  int lock_fd = -1;
  int rc;

  if (!join(lock_path, sizeof lock_path, state_dir, dir_len, LOCK_NAME)) {
    set_err(err, err_len, "The state folder path %.64s... is too long; choose a shorter state folder.", state_dir);
    return -ENAMETOOLONG;
  }
  rc = duet__state_dir_lock(lock_path, &lock_fd, err, err_len);
  if (rc != 0)
    return rc;
  /* Another duetd may have made the pair while this one waited. */
  if (!pair_is_usable(cert_path, key_path)) {
    rc = make_and_write(cert_path, key_path, created, err, err_len);
    if (rc == 0)
      duet__state_dir_sync(state_dir);
  }
  duet__state_dir_unlock(lock_fd);
  return rc;
}

int duet__dev_cert_ensure(const char *state_dir, char *cert_path, size_t cert_len, char *key_path, size_t key_len,
                          int *created, char *err, size_t err_len) {
  size_t dir_len;
  int rc;

  if (err && err_len > 0)
    err[0] = '\0';
  if (created)
    *created = 0;
  if (!state_dir || !state_dir[0] || !cert_path || cert_len == 0 || !key_path || key_len == 0 || !created) {
    set_err(err, err_len,
            "No state folder or output buffer was given for the development certificate; this is a bug in "
            "duet, please report it.");
    return -EINVAL;
  }
  cert_path[0] = '\0';
  key_path[0] = '\0';

  /* Trailing slashes would only make the paths in messages look odd. */
  dir_len = strlen(state_dir);
  while (dir_len > 1 && state_dir[dir_len - 1] == '/')
    dir_len--;
  if (dir_len == 1 && state_dir[0] == '/')
    dir_len = 0;
  if (dir_len > (size_t)INT_MAX || !join(cert_path, cert_len, state_dir, dir_len, CERT_NAME) ||
      !join(key_path, key_len, state_dir, dir_len, KEY_NAME)) {
    cert_path[0] = '\0';
    key_path[0] = '\0';
    set_err(err, err_len,
            "The state folder path %.64s... is too long for the development certificate's file names; "
            "choose a shorter state folder.",
            state_dir);
    return -ENAMETOOLONG;
  }

  rc = duet__state_dir_make(state_dir, err, err_len);
  if (rc != 0)
    return rc;
  /* The usual case needs no lock (nor a writable folder). A pair seen while
   * another duetd renames its new one in may look mismatched: the check
   * under the lock decides. */
  if (pair_is_usable(cert_path, key_path))
    return 0;
  return make_under_lock(state_dir, dir_len, cert_path, key_path, created, err, err_len);
}
