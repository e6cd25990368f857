/*
 * Path resolution for the static file server.
 *
 * Pure file-system logic with no libwebsockets in it, so it can be tested on
 * its own against real directory trees.
 */
#ifndef DUET_WEB_PATH_H
#define DUET_WEB_PATH_H

#include <stddef.h>
#include <sys/stat.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum duet_web_path_result {
  DUET_WEB_PATH_FILE = 0,     /* out holds a regular file's real path, *st filled */
  DUET_WEB_PATH_REDIRECT_DIR, /* a directory asked for without a trailing slash: redirect to url + "/" */
  DUET_WEB_PATH_NOT_FOUND,    /* 404 */
  DUET_WEB_PATH_FORBIDDEN,    /* 403: dotfile segment, symlink leaving the root, not a regular file */
  DUET_WEB_PATH_BAD_REQUEST   /* 400: "." or "..", backslash, NUL, control character, '%', too long */
} duet_web_path_result_t;

/* Resolves rel, a percent-decoded URL path relative to a mount ("" or "/"
 * means the mount's root; a leading '/' is optional), within root_real (an
 * absolute path already passed through realpath(), no trailing slash).
 * rel_len is given because a decoded path may contain NUL (which is refused).
 * Empty segments ("//") are ignored. A directory resolves to its index.html
 * when the path ends with '/' (or is empty), else to
 * DUET_WEB_PATH_REDIRECT_DIR. The final file's realpath() must lie under
 * root_real + "/" (symlinks inside the root are fine, ones leaving it are
 * FORBIDDEN). Any segment starting with '.' is refused: "." and ".." are
 * BAD_REQUEST, other dotfiles FORBIDDEN; this also holds for the real path a
 * symlink leads to. A path that does not fit in out_len is BAD_REQUEST.
 * On any result other than FILE, out is set to "" (when out_len > 0). */
duet_web_path_result_t duet__web_path_resolve(const char *root_real, const char *rel, size_t rel_len, char *out,
                                              size_t out_len, struct stat *st);

/* Content-Type for a file name, chosen by its extension (case-insensitive);
 * "application/octet-stream" for anything unknown. Never returns NULL. */
const char *duet__mime_type(const char *path);

/* True (1) when child (a realpath) equals parent (a realpath) or lies inside
 * it, else 0. Used to refuse a TLS key inside a served folder. */
int duet__path_is_inside(const char *child, const char *parent);

#ifdef __cplusplus
}
#endif

#endif
