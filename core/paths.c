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

const char *duet__paths_default_web_root(void) {
  return duet__paths_running_from_build() ? DUET_SOURCE_ROOT "/web" : DUET_INSTALL_WEB_DIR;
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
  const char *bundled = duet__paths_running_from_build() ? DUET_BUILD_ROOT "/plugins" : DUET_INSTALL_PLUGIN_DIR;
  return try_dir(bundled, strlen(bundled), name, out, len);
}

const char *duet__paths_plugin_search_desc(void) {
  return duet__paths_running_from_build() ? "$DUET_PLUGIN_PATH and " DUET_BUILD_ROOT "/plugins"
                                          : "$DUET_PLUGIN_PATH and " DUET_INSTALL_PLUGIN_DIR;
}
