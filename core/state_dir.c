/* mkostemp() (O_CLOEXEC from the start) is a GNU extension. */
#define _GNU_SOURCE
#include "state_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif
#ifndef NAME_MAX
#define NAME_MAX 255
#endif

/* A temporary of FILE is FILE.tmp.XXXXXX (mkostemp's six characters). */
#define TEMP_INFIX ".tmp."

static int is_dir(const char *path) {
  struct stat sb;

  return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Like mkdir -p with mode 0700 for every folder it makes. */
int duet__state_dir_make(const char *dir, char *err, size_t err_len) {
  char buf[PATH_MAX];
  size_t len = strlen(dir);
  char *p;

  if (len == 0 || len >= sizeof(buf)) {
    snprintf(err, err_len,
             "The state folder path \"%.64s\" is empty or too long (over %d bytes); choose another state "
             "folder.",
             dir, PATH_MAX - 1);
    return len == 0 ? -EINVAL : -ENAMETOOLONG;
  }
  memcpy(buf, dir, len + 1);
  for (p = buf + 1;; p++) {
    char saved = *p;
    int e;

    if (saved != '/' && saved != '\0')
      continue;
    *p = '\0';
    /* An existing folder is fine whatever mkdir() says about it: EEXIST,
     * but also EROFS or EACCES on a read-only or foreign parent. */
    if (mkdir(buf, 0700) != 0) {
      e = errno; /* Saved first: is_dir() may overwrite errno. */
      if (!is_dir(buf)) {
        if (e == EEXIST) {
          snprintf(err, err_len,
                   "Cannot use %s as (part of) the state folder: it exists but is not a folder. Move it "
                   "away or choose another state folder.",
                   buf);
          return -ENOTDIR;
        }
        snprintf(err, err_len,
                 "Cannot create the state folder %s: %s. Create it yourself, fix the permissions of its "
                 "parent, or choose another state folder.",
                 buf, strerror(e));
        return -e;
      }
    }
    *p = saved;
    if (saved == '\0')
      break;
  }
  return 0;
}

/* Splits path into its folder ("." when it has none) and its last name. */
static int split_path(const char *path, char *dir, size_t dir_len, const char **base) {
  const char *slash = strrchr(path, '/');
  int n;

  *base = slash ? slash + 1 : path;
  if (!slash)
    n = snprintf(dir, dir_len, ".");
  else if (slash == path)
    n = snprintf(dir, dir_len, "/");
  else
    n = snprintf(dir, dir_len, "%.*s", (int)(slash - path), path);
  return n >= 0 && (size_t)n < dir_len;
}

/* Writes all of data to fd, then makes it durable. */
static int write_all(int fd, const char *data, size_t len) {
  size_t done = 0;

  while (done < len) {
    ssize_t w = write(fd, data + done, len - done);

    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    done += (size_t)w;
  }
  return fsync(fd);
}

int duet__state_file_write(const char *path, mode_t mode, const char *data, size_t len, const char *what, char *err,
                           size_t err_len) {
  char tmp[PATH_MAX];
  int fd = -1;
  int e;
  int n;

  n = snprintf(tmp, sizeof(tmp), "%s" TEMP_INFIX "XXXXXX", path);
  if (n < 0 || (size_t)n >= sizeof(tmp)) {
    snprintf(err, err_len, "The path of the development %s %s is too long; choose a shorter state folder.", what, path);
    return -ENAMETOOLONG;
  }
  /* A unique name (mode 0600, O_EXCL) in the same folder, so that the
   * rename is atomic and no one else's temporary is ever touched. */
  fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) {
    tmp[0] = '\0';
    goto fail;
  }
  /* The umask may have narrowed the mode; the key must be exactly 0600 and
   * the certificate readable by a proxy or browser import. */
  if (fchmod(fd, mode) != 0 || write_all(fd, data, len) != 0)
    goto fail;
  e = close(fd);
  fd = -1;
  if (e != 0 || rename(tmp, path) != 0)
    goto fail;
  return 0;

fail:
  e = errno;
  if (fd >= 0)
    close(fd);
  if (tmp[0])
    (void)unlink(tmp);
  snprintf(err, err_len,
           "Cannot write the development %s %s: %s. Make the state folder writable by this user and check "
           "that the disk is not full, or choose another state folder.",
           what, path, strerror(e));
  return -e;
}

void duet__state_file_remove_temporaries(const char *path) {
  char dir[PATH_MAX];
  char prefix[NAME_MAX + 1];
  const char *base;
  struct dirent *entry;
  size_t prefix_len;
  DIR *d;
  int n;

  if (!split_path(path, dir, sizeof dir, &base))
    return;
  n = snprintf(prefix, sizeof prefix, "%s" TEMP_INFIX, base);
  if (n < 0 || (size_t)n >= sizeof prefix)
    return;
  prefix_len = (size_t)n;
  d = opendir(dir);
  if (!d)
    return;
  while ((entry = readdir(d)) != NULL) {
    /* Only names of the exact form mkostemp() gave: prefix and 6 more. */
    if (strncmp(entry->d_name, prefix, prefix_len) == 0 && strlen(entry->d_name) == prefix_len + 6)
      (void)unlinkat(dirfd(d), entry->d_name, 0);
  }
  closedir(d);
}

int duet__state_dir_lock(const char *lock_path, int *fd_out, char *err, size_t err_len) {
  int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  int e;

  *fd_out = -1;
  if (fd < 0) {
    e = errno;
    snprintf(err, err_len,
             "Cannot open the lock file %s: %s. Make the state folder writable by this user, or choose another "
             "state folder.",
             lock_path, strerror(e));
    return -e;
  }
  /* Waits for another duetd making the certificate: that takes a moment. */
  while (flock(fd, LOCK_EX) != 0) {
    e = errno;
    if (e == EINTR)
      continue;
    close(fd);
    snprintf(err, err_len,
             "Cannot lock %s: %s. The state folder must be on a file system with file locks (flock); choose "
             "another state folder.",
             lock_path, strerror(e));
    return -e;
  }
  *fd_out = fd;
  return 0;
}

void duet__state_dir_unlock(int fd) {
  /* Closing the only descriptor of the open file releases the lock. */
  if (fd >= 0)
    close(fd);
}

/* Makes the renames durable; failure only risks redoing the pair later. */
void duet__state_dir_sync(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
}
