#include "mounts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "duet/plugin.h" /* DUET_E* */

#include "log.h"
#include "web_path.h"

static int compare_mounts(const void *a, const void *b) {
  const duet_mount_point_t *x = a, *y = b;
  return x->url_len < y->url_len ? 1 : x->url_len > y->url_len ? -1 : 0;
}

/* Whether the file or folder at path lies inside root (both resolved). */
static int lies_inside(const char *path, const char *root) {
  char *real = path ? realpath(path, NULL) : NULL;
  int inside = real && duet__path_is_inside(real, root);
  free(real);
  return inside;
}

static int check_secrets_outside(const duet_mount_point_t *m, const char *key_path, const char *state_dir) {
  if (lies_inside(key_path, m->root)) {
    DUET_ERROR("refusing to start: the TLS private key %s lies inside the served folder %s, so anyone "
               "could download it; move the key out of every served folder",
               key_path, m->root);
    return DUET_EINVAL;
  }
  if (lies_inside(state_dir, m->root)) {
    DUET_ERROR("refusing to start: the state folder %s (it holds private keys) lies inside the served "
               "folder %s; choose another --state-dir",
               state_dir, m->root);
    return DUET_EINVAL;
  }
  return 0;
}

int duet__mounts_prepare(duet_mounts_t *mounts, const duet_options_t *opt, const char *key_path,
                         const char *state_dir) {
  mounts->count = 1 + opt->mount_count;
  mounts->list = calloc(mounts->count, sizeof *mounts->list);
  if (!mounts->list)
    return DUET_ENOMEM;
  for (size_t i = 0; i < mounts->count; i++) {
    duet_mount_point_t *m = &mounts->list[i];
    const char *dir = i == 0 ? opt->web_root : opt->mounts[i - 1].dir;
    m->url = i == 0 ? "" : opt->mounts[i - 1].url;
    m->url_len = strlen(m->url);
    m->root = realpath(dir, NULL);
    if (!m->root) {
      DUET_ERROR("cannot serve %s at %s/: %s (check --%s)", dir, m->url, strerror(errno),
                 i == 0 ? "web-root" : "mount");
      return DUET_EINVAL;
    }
    int r = check_secrets_outside(m, key_path, state_dir);
    if (r != 0)
      return r;
  }
  qsort(mounts->list, mounts->count, sizeof *mounts->list, compare_mounts);
  return 0;
}

void duet__mounts_free(duet_mounts_t *mounts) {
  for (size_t i = 0; i < mounts->count; i++)
    free(mounts->list[i].root);
  free(mounts->list);
  mounts->list = NULL;
  mounts->count = 0;
}

const duet_mount_point_t *duet__mounts_find(const duet_mounts_t *mounts, const char *uri) {
  /* Longest URL first, so the first match is the best. */
  for (size_t i = 0; i < mounts->count; i++) {
    const duet_mount_point_t *m = &mounts->list[i];
    if (strncmp(uri, m->url, m->url_len) == 0 && (uri[m->url_len] == '/' || uri[m->url_len] == '\0'))
      return m;
  }
  return NULL;
}

const char *duet__mounts_web_root(const duet_mounts_t *mounts) {
  /* The web root's URL is "", the shortest: it sorts last. */
  return mounts->count ? mounts->list[mounts->count - 1].root : "";
}
