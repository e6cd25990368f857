/*
 * Self-signed development TLS certificate.
 *
 * Lets duetd serve https:// and wss:// on a developer's machine without any
 * manual openssl steps. Browsers still warn about it: it is for development.
 */
#ifndef DUET_DEV_CERT_H
#define DUET_DEV_CERT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Ensures state_dir holds a usable self-signed development certificate
 * (dev-cert.pem) and its key (dev-key.pem), making them on first use.
 * Creates state_dir (mode 0700, parents too) when missing. Writes the two
 * paths into cert_path/key_path. *created is set to 1 when a new pair was
 * made (first run, or the old one expired/unreadable/mismatched), else 0.
 * Safe when several processes (or threads) call it at once on one folder:
 * a new pair is made under a lock (dev-cert.lock, which stays in the
 * folder), after checking again, so all of them end with the same pair.
 * Returns 0, or a negative errno with a sentence in err naming the file
 * and what to do. */
int duet__dev_cert_ensure(const char *state_dir, char *cert_path, size_t cert_len, char *key_path, size_t key_len,
                          int *created, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif
