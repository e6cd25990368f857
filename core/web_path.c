#include "web_path.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "duet/plugin.h" /* DUET_E* */

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/* Length of a parent path without trailing slashes; "/" keeps length 0 so
 * that appending "/child" to it yields an absolute path. */
static size_t trimmed_len(const char *path) {
  size_t len = strlen(path);

  while (len > 0 && path[len - 1] == '/')
    len--;
  return len;
}

int duet__path_is_inside(const char *child, const char *parent) {
  size_t plen;

  if (!child || !parent || child[0] != '/' || parent[0] != '/')
    return 0;
  plen = trimmed_len(parent);
  if (plen == 0)
    return 1; /* Everything absolute lies inside "/". */
  if (strncmp(child, parent, plen) != 0)
    return 0;
  /* A bare prefix match is not enough: "/srv/www2" is not inside "/srv/www". */
  return child[plen] == '\0' || child[plen] == '/';
}

/* Checks every byte and segment of the decoded request path. Refusals that
 * mean a malformed request win over those that mean a hidden file. */
static duet_web_path_result_t check_rel(const char *rel, size_t rel_len) {
  int dotfile = 0;
  size_t i = 0;

  for (i = 0; i < rel_len; i++) {
    unsigned char c = (unsigned char)rel[i];

    /* '%' after decoding means double encoding, which could sneak "%2e%2e"
     * past a second decoder somewhere else. */
    if (c < 0x20 || c == 0x7f || c == '\\' || c == '%')
      return DUET_WEB_PATH_BAD_REQUEST;
  }

  i = 0;
  while (i < rel_len) {
    size_t start;
    size_t len;

    while (i < rel_len && rel[i] == '/')
      i++;
    start = i;
    while (i < rel_len && rel[i] != '/')
      i++;
    len = i - start;
    if (len == 0 || rel[start] != '.')
      continue;
    if (len == 1 || (len == 2 && rel[start + 1] == '.'))
      return DUET_WEB_PATH_BAD_REQUEST;
    dotfile = 1;
  }
  return dotfile ? DUET_WEB_PATH_FORBIDDEN : DUET_WEB_PATH_FILE;
}

/* Builds root + "/" + each non-empty segment of rel into buf. Returns the
 * number of segments, or DUET_ENOBUFS when the result would not fit in buf_len. */
static int join_path(char *buf, size_t buf_len, const char *root, size_t root_len, const char *rel, size_t rel_len) {
  size_t used = root_len;
  size_t i = 0;
  int segments = 0;

  if (root_len >= buf_len)
    return DUET_ENOBUFS;
  memcpy(buf, root, root_len);
  while (i < rel_len) {
    size_t start;
    size_t len;

    while (i < rel_len && rel[i] == '/')
      i++;
    start = i;
    while (i < rel_len && rel[i] != '/')
      i++;
    len = i - start;
    if (len == 0)
      continue;
    if (len + 1 >= buf_len - used)
      return DUET_ENOBUFS;
    buf[used++] = '/';
    memcpy(buf + used, rel + start, len);
    used += len;
    segments++;
  }
  if (used == 0) {
    if (buf_len < 2)
      return DUET_ENOBUFS;
    buf[used++] = '/'; /* The root is "/" itself. */
  }
  buf[used] = '\0';
  return segments;
}

/* Maps a failed realpath() or stat() to what the client is told. */
static duet_web_path_result_t from_errno(int err) {
  switch (err) {
  case EACCES:
  case ELOOP:
    return DUET_WEB_PATH_FORBIDDEN;
  case ENAMETOOLONG:
    return DUET_WEB_PATH_BAD_REQUEST;
  default:
    return DUET_WEB_PATH_NOT_FOUND;
  }
}

/* A symlink inside the root may still lead to a hidden file such as .git or
 * .env, so the part of the real path below the root is checked as well. */
static int has_dot_segment(const char *path) {
  const char *p = path;

  while (*p) {
    while (*p == '/')
      p++;
    if (*p == '.')
      return 1;
    while (*p && *p != '/')
      p++;
  }
  return 0;
}

/* Resolves path with realpath() into real (PATH_MAX bytes) and checks that it
 * stays inside the root and avoids dot segments. */
static duet_web_path_result_t resolve_inside(const char *path, const char *root_real, size_t root_len, char *real) {
  if (!realpath(path, real))
    return from_errno(errno);
  if (!duet__path_is_inside(real, root_real))
    return DUET_WEB_PATH_FORBIDDEN;
  if (has_dot_segment(real + root_len))
    return DUET_WEB_PATH_FORBIDDEN;
  return DUET_WEB_PATH_FILE;
}

duet_web_path_result_t duet__web_path_resolve(const char *root_real, const char *rel, size_t rel_len, char *out,
                                              size_t out_len, struct stat *st) {
  char joined[PATH_MAX];
  char real[PATH_MAX];
  struct stat sb;
  duet_web_path_result_t r;
  size_t root_len;
  size_t limit;
  size_t real_len;
  int segments;
  int want_dir;

  if (out && out_len > 0)
    out[0] = '\0';
  if (!root_real || root_real[0] != '/' || !out || out_len == 0 || !st || (!rel && rel_len > 0))
    return DUET_WEB_PATH_BAD_REQUEST;

  r = check_rel(rel, rel_len);
  if (r != DUET_WEB_PATH_FILE)
    return r;

  /* Refusing early keeps work bounded for absurd requests; the real path is
   * checked against out_len again below since symlinks can change its length. */
  limit = out_len < sizeof(joined) ? out_len : sizeof(joined);
  root_len = trimmed_len(root_real);
  segments = join_path(joined, limit, root_real, root_len, rel, rel_len);
  if (segments < 0)
    return DUET_WEB_PATH_BAD_REQUEST;
  want_dir = segments == 0 || (rel_len > 0 && rel[rel_len - 1] == '/');

  r = resolve_inside(joined, root_real, root_len, real);
  if (r != DUET_WEB_PATH_FILE)
    return r;
  if (stat(real, &sb) != 0)
    return from_errno(errno);

  if (S_ISDIR(sb.st_mode)) {
    /* Without the slash, relative links inside index.html would resolve
     * against the parent folder, so the client is sent to the slashed URL. */
    if (!want_dir)
      return DUET_WEB_PATH_REDIRECT_DIR;
    real_len = strlen(real);
    if (real_len + sizeof("/index.html") > sizeof(joined))
      return DUET_WEB_PATH_BAD_REQUEST;
    memcpy(joined, real, real_len);
    memcpy(joined + real_len, "/index.html", sizeof("/index.html"));
    r = resolve_inside(joined, root_real, root_len, real);
    if (r != DUET_WEB_PATH_FILE)
      return r;
    if (stat(real, &sb) != 0)
      return from_errno(errno);
    if (!S_ISREG(sb.st_mode))
      return S_ISDIR(sb.st_mode) ? DUET_WEB_PATH_NOT_FOUND : DUET_WEB_PATH_FORBIDDEN;
  } else if (!S_ISREG(sb.st_mode)) {
    return DUET_WEB_PATH_FORBIDDEN; /* Devices, FIFOs and sockets are never served. */
  } else if (want_dir) {
    return DUET_WEB_PATH_NOT_FOUND; /* "file.html/" names no folder. */
  }

  real_len = strlen(real);
  if (real_len >= out_len)
    return DUET_WEB_PATH_BAD_REQUEST;
  memcpy(out, real, real_len + 1);
  *st = sb;
  return DUET_WEB_PATH_FILE;
}

struct mime_entry {
  const char *ext;
  const char *type;
};

static const struct mime_entry mime_table[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"webmanifest", "application/manifest+json"},
    {"wasm", "application/wasm"},
    {"woff2", "font/woff2"},
    {"txt", "text/plain; charset=utf-8"},
};

const char *duet__mime_type(const char *path) {
  const char *base;
  const char *dot;
  size_t i;

  if (!path)
    return "application/octet-stream";
  base = strrchr(path, '/');
  base = base ? base + 1 : path;
  dot = strrchr(base, '.');
  /* A leading dot starts a hidden name, not an extension. */
  if (!dot || dot == base)
    return "application/octet-stream";
  for (i = 0; i < sizeof(mime_table) / sizeof(mime_table[0]); i++) {
    if (strcasecmp(dot + 1, mime_table[i].ext) == 0)
      return mime_table[i].type;
  }
  return "application/octet-stream";
}
