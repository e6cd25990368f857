/* The served folders: the web root at / and every --mount, each resolved
 * once at start, longest URL first. */
#ifndef DUET_MOUNTS_H
#define DUET_MOUNTS_H

#include <stddef.h>

#include "options.h"

typedef struct duet_mount_point {
  const char *url; /* "" for the web root, else "/extra" */
  size_t url_len;
  char *root; /* realpath of the folder */
} duet_mount_point_t;

typedef struct duet_mounts {
  duet_mount_point_t *list; /* longest url first */
  size_t count;
} duet_mounts_t;

/* Resolves the web root and the mounts of opt. Refuses (logging why) a
 * folder that does not exist, and any folder that holds key_path or
 * state_dir (NULL: not checked): the tutorial served its own private key.
 * Returns 0 or -1. */
int duet__mounts_prepare(duet_mounts_t *mounts, const duet_options_t *opt, const char *key_path, const char *state_dir);
void duet__mounts_free(duet_mounts_t *mounts);
/* The mount that serves uri, or NULL. */
const duet_mount_point_t *duet__mounts_find(const duet_mounts_t *mounts, const char *uri);
/* The web root's folder (for the log). */
const char *duet__mounts_web_root(const duet_mounts_t *mounts);

#endif
