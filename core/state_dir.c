#include "state_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

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

int duet__state_file_write(const char *path, mode_t mode, const char *data, size_t len, const char *what, char *err,
                           size_t err_len) {
  char tmp[PATH_MAX];
  size_t done = 0;
  int fd = -1;
  int e;
  int n;

  n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
  if (n < 0 || (size_t)n >= sizeof(tmp)) {
    snprintf(err, err_len, "The path of the development %s %s is too long; choose a shorter state folder.", what, path);
    return -ENAMETOOLONG;
  }
  /* A leftover from a crashed run with the same pid would block O_EXCL. */
  (void)unlink(tmp);
  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0)
    goto fail;
  /* The umask may have narrowed the mode; the key must be exactly 0600 and
   * the certificate readable by a proxy or browser import. */
  if (fchmod(fd, mode) != 0)
    goto fail;
  while (done < len) {
    ssize_t w = write(fd, data + done, len - done);

    if (w < 0) {
      if (errno == EINTR)
        continue;
      goto fail;
    }
    done += (size_t)w;
  }
  if (fsync(fd) != 0)
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
  (void)unlink(tmp);
  snprintf(err, err_len,
           "Cannot write the development %s %s: %s. Make the state folder writable by this user and check "
           "that the disk is not full, or choose another state folder.",
           what, path, strerror(e));
  return -e;
}

/* Makes the renames durable; failure only risks redoing the pair later. */
void duet__state_dir_sync(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
}
