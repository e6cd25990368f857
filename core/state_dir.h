/* The state folder (development certificate and key): made private, its
 * files written whole or not at all. */
#ifndef DUET_STATE_DIR_H
#define DUET_STATE_DIR_H

#include <stddef.h>
#include <sys/types.h>

/* Like mkdir -p with mode 0700 for every folder it makes. Returns 0, or a
 * negative errno with a sentence in err saying what to do. */
int duet__state_dir_make(const char *dir, char *err, size_t err_len);
/* Writes data to path through a temporary file and a rename, with exactly
 * mode; what names the file in err ("certificate", "key"). */
int duet__state_file_write(const char *path, mode_t mode, const char *data, size_t len, const char *what, char *err,
                           size_t err_len);
/* Makes renames in dir durable; a failure only risks redoing the work. */
void duet__state_dir_sync(const char *dir);

#endif
