/* The state folder (development certificate and key): made private, its
 * files written whole or not at all, and a lock for those who write them,
 * so that several duetd starting at once on one folder agree on one pair. */
#ifndef DUET_STATE_DIR_H
#define DUET_STATE_DIR_H

#include <stddef.h>
#include <sys/types.h>

/* Like mkdir -p with mode 0700 for every folder it makes. Returns 0, or a
 * negative errno with a sentence in err saying what to do. */
int duet__state_dir_make(const char *dir, char *err, size_t err_len);
/* Writes data to path through a temporary file of a unique name
 * (path.tmp.XXXXXX, in the same folder) and a rename, with exactly mode;
 * what names the file in err ("certificate", "key"). The temporary is
 * removed on failure. */
int duet__state_file_write(const char *path, mode_t mode, const char *data, size_t len, const char *what, char *err,
                           size_t err_len);
/* Removes temporaries of path left by a writer that died between making
 * and renaming one. Only while holding the lock: then no one writes. */
void duet__state_file_remove_temporaries(const char *path);
/* Takes an exclusive lock (flock) on lock_path, making the file (mode 0600)
 * when missing, and waits for it as long as another process holds it.
 * *fd_out is the descriptor to give duet__state_dir_unlock. The file stays:
 * removing it could let two processes lock two different files. Returns 0,
 * or a negative errno with a sentence in err. Threads of one process
 * exclude each other too (each call opens the file anew). */
int duet__state_dir_lock(const char *lock_path, int *fd_out, char *err, size_t err_len);
void duet__state_dir_unlock(int fd);
/* Makes renames in dir durable; a failure only risks redoing the work. */
void duet__state_dir_sync(const char *dir);

#endif
