#include "paths.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "duet/plugin.h"
#include "duet_build_config.h"

int duet__paths_running_from_build(void) {
  static int known = -1;
  if (known < 0) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    known = 0;
    if (n > 0) {
      exe[n] = '\0';
      size_t root_len = strlen(DUET_BUILD_ROOT);
      known = strncmp(exe, DUET_BUILD_ROOT, root_len) == 0 && exe[root_len] == '/';
    }
  }
  return known;
}

/* Where the installed tree was moved to: when duetd runs as ROOT/<bindir>/duetd
 * (a DESTDIR, a board image being assembled, an unpacked tarball), its plugins
 * and web files are under ROOT too, at their usual place below it. Empty when
 * duetd runs from the compiled-in bindir or under another name. */
static const char *install_root(void) {
  static char root[PATH_MAX];
  static int known;
  if (!known) {
    known = 1;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    const char *suffix = DUET_INSTALL_BIN_DIR "/duetd";
    size_t suffix_len = strlen(suffix);
    if (n > 0 && (size_t)n > suffix_len) {
      exe[n] = '\0';
      if (strcmp(exe + n - suffix_len, suffix) == 0)
        memcpy(root, exe, (size_t)n - suffix_len); /* root is as large as exe */
    }
  }
  return root;
}

/* An install folder (an absolute path compiled in), moved with the binary. */
static const char *installed(const char *dir, char *buf, size_t len) {
  int n = snprintf(buf, len, "%s%s", install_root(), dir);
  return n > 0 && (size_t)n < len ? buf : dir;
}

const char *duet__paths_default_web_root(void) {
  static char web[PATH_MAX];
  return duet__paths_running_from_build() ? DUET_SOURCE_ROOT "/web" : installed(DUET_INSTALL_WEB_DIR, web, sizeof web);
}

const char *duet__paths_default_state_dir(char *buf, size_t len) {
  const char *systemd = getenv("STATE_DIRECTORY");
  const char *xdg = getenv("XDG_STATE_HOME");
  const char *home = getenv("HOME");
  if (systemd && *systemd)
    snprintf(buf, len, "%s", systemd);
  else if (xdg && *xdg == '/')
    snprintf(buf, len, "%s/duet", xdg);
  else if (home && *home == '/')
    snprintf(buf, len, "%s/.local/state/duet", home);
  else
    snprintf(buf, len, "/var/lib/duet");
  return buf;
}

static int try_dir(const char *dir, size_t dir_len, const char *name, char *out, size_t len) {
  /* The build tree keeps each plugin in its own folder; an install puts them side by side. */
  snprintf(out, len, "%.*s/%s/duet-%s.so", (int)dir_len, dir, name, name);
  if (access(out, R_OK) == 0)
    return 0;
  snprintf(out, len, "%.*s/duet-%s.so", (int)dir_len, dir, name);
  return access(out, R_OK) == 0 ? 0 : DUET_ENOENT;
}

int duet__paths_find_plugin(const char *name, char *out, size_t len) {
  const char *env = getenv("DUET_PLUGIN_PATH");
  while (env && *env) {
    const char *end = strchr(env, ':');
    size_t n = end ? (size_t)(end - env) : strlen(env);
    if (n && try_dir(env, n, name, out, len) == 0)
      return 0;
    env = end ? end + 1 : NULL;
  }
  char dir[PATH_MAX];
  const char *bundled = duet__paths_running_from_build() ? DUET_BUILD_ROOT "/plugins"
                                                         : installed(DUET_INSTALL_PLUGIN_DIR, dir, sizeof dir);
  return try_dir(bundled, strlen(bundled), name, out, len);
}

const char *duet__paths_plugin_search_desc(void) {
  static char desc[PATH_MAX + 32];
  if (duet__paths_running_from_build())
    return "$DUET_PLUGIN_PATH and " DUET_BUILD_ROOT "/plugins";
  char dir[PATH_MAX];
  int n = snprintf(desc, sizeof desc, "$DUET_PLUGIN_PATH and %s", installed(DUET_INSTALL_PLUGIN_DIR, dir, sizeof dir));
  return n > 0 && (size_t)n < sizeof desc ? desc : "$DUET_PLUGIN_PATH and " DUET_INSTALL_PLUGIN_DIR;
}
