/* Where duetd finds its bundled files: the source tree when it runs from
 * its build folder, the installed folders otherwise. */
#ifndef DUET_PATHS_H
#define DUET_PATHS_H

#include <stddef.h>

/* True when this duetd binary lives in the build folder it was built in. */
int duet__paths_running_from_build(void);
/* The folder served at / when --web-root is not given. */
const char *duet__paths_default_web_root(void);
/* $STATE_DIRECTORY (systemd), else $XDG_STATE_HOME/duet, else ~/.local/state/duet. */
const char *duet__paths_default_state_dir(char *buf, size_t len);
/* Finds duet-NAME.so in $DUET_PLUGIN_PATH, then the bundled plugin folder. */
int duet__paths_find_plugin(const char *name, char *out, size_t len);
/* Human description of where duet__paths_find_plugin looks. */
const char *duet__paths_plugin_search_desc(void);

#endif
