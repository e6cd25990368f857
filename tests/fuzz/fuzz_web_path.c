/*
 * libFuzzer target: core/web_path.c duet__web_path_resolve against a fixed
 * tree made once in LLVMFuzzerInitialize:
 *
 *   $TMP/outside/secret.txt        a file next to the root, never servable
 *   $TMP/root/                     the root (passed through realpath)
 *     index.html  a.txt  .env  .git/config  sub/index.html  sub/b.css
 *     nodir/ (no index.html)  .hidden/x.txt  sub/.dot/y.txt
 *     in-link -> sub/b.css         symlink staying inside
 *     dir-link -> sub              symlink to a folder inside
 *     dot-link -> .env             symlink to a dotfile inside
 *     out-link -> ../outside/secret.txt, abs-out -> /etc/passwd
 *     out-dir -> ../outside        symlink to a folder outside
 *     loop -> loop                 a symlink loop
 *     dangling -> nowhere
 *     fifo                         a FIFO (never served)
 *   $TMP/root2 -> root             (not used as root; realpath resolves it)
 *
 * The input is the percent-decoded request path (bytes, may hold NUL). The
 * first byte picks the out buffer size (small sizes test truncation).
 * Checks: never crashes; on FILE, out is a regular file whose realpath lies
 * under the root's and has no segment starting with '.'; on anything else,
 * out is "".
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "web_path.h"

static char root_real[PATH_MAX];
static char base[PATH_MAX];

static void die(const char *what) {
  fprintf(stderr, "fuzz_web_path: setup failed: %s: %s\n", what, strerror(errno));
  abort();
}

static void put_file(const char *rel, const char *text) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/%s", base, rel);
  FILE *f = fopen(p, "w");
  if (!f)
    die(p);
  fputs(text, f);
  fclose(f);
}

static void put_dir(const char *rel) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/%s", base, rel);
  if (mkdir(p, 0755) != 0)
    die(p);
}

static void put_link(const char *target, const char *rel) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/%s", base, rel);
  if (symlink(target, p) != 0)
    die(p);
}

static void remove_tree(void) {
  /* Best effort at exit: the tree lives under /tmp and is tiny. */
  char cmd[PATH_MAX + 32];
  if (base[0] && strncmp(base, "/tmp/", 5) == 0) {
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0) {
      /* nothing to do */
    }
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  char tmpl[] = "/tmp/duet-fuzz-web-XXXXXX";
  if (!mkdtemp(tmpl))
    die("mkdtemp");
  snprintf(base, sizeof base, "%s", tmpl);
  atexit(remove_tree);
  put_dir("outside");
  put_file("outside/secret.txt", "secret\n");
  put_dir("root");
  put_file("root/index.html", "<p>index</p>\n");
  put_file("root/a.txt", "a\n");
  put_file("root/.env", "PASSWORD=x\n");
  put_dir("root/.git");
  put_file("root/.git/config", "[core]\n");
  put_dir("root/sub");
  put_file("root/sub/index.html", "<p>sub</p>\n");
  put_file("root/sub/b.css", "b{}\n");
  put_dir("root/sub/.dot");
  put_file("root/sub/.dot/y.txt", "y\n");
  put_dir("root/nodir");
  put_dir("root/.hidden");
  put_file("root/.hidden/x.txt", "x\n");
  put_link("sub/b.css", "root/in-link");
  put_link("sub", "root/dir-link");
  put_link(".env", "root/dot-link");
  put_link(".git", "root/dotdir-link");
  put_link("../outside/secret.txt", "root/out-link");
  put_link("/etc/passwd", "root/abs-out");
  put_link("../outside", "root/out-dir");
  put_link("loop", "root/loop");
  put_link("nowhere", "root/dangling");
  put_link("../../root/a.txt", "root/sub/up-in");   /* leaves and re-enters the root */
  put_link("../root-sibling", "root/sibling");       /* "/…/root-sibling" is not inside "/…/root" */
  put_dir("root-sibling");
  put_file("root-sibling/z.txt", "z\n");
  put_link("root", "root2");
  {
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/root/fifo", base);
    if (mkfifo(p, 0644) != 0)
      die(p);
  }
  {
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/root", base);
    if (!realpath(p, root_real))
      die("realpath root");
  }
  return 0;
}

static int has_dot_segment_below(const char *path, size_t root_len) {
  const char *p = path + root_len;
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* out is malloc'd with exactly out_len bytes so ASan sees any write past it. */
  static const size_t sizes[] = {PATH_MAX, PATH_MAX, PATH_MAX, PATH_MAX, 1, 2, 16, 40, 64, 100, 4097, 8192};
  char *out;
  char real[PATH_MAX];
  struct stat st;
  size_t out_len;
  size_t root_len = strlen(root_real);
  duet_web_path_result_t r;

  if (size == 0 || size > 10000)
    return 0;
  out_len = sizes[data[0] % (sizeof sizes / sizeof sizes[0])];
  data++;
  size--;
  /* The rel path is exactly the given bytes, in a buffer of exactly that size
   * so ASan sees any read past rel_len. */
  char *rel = malloc(size ? size : 1);
  if (!rel)
    return 0;
  memcpy(rel, data, size);
  out = malloc(out_len);
  if (!out) {
    free(rel);
    return 0;
  }
  memset(out, 'Z', out_len);
  memset(&st, 0, sizeof st);

  r = duet__web_path_resolve(root_real, rel, size, out, out_len, &st);
  if (r < DUET_WEB_PATH_FILE || r > DUET_WEB_PATH_BAD_REQUEST)
    __builtin_trap();
  if (r == DUET_WEB_PATH_FILE) {
    size_t n = strnlen(out, out_len);
    if (n >= out_len) /* not terminated within out_len */
      __builtin_trap();
    if (!realpath(out, real))
      __builtin_trap(); /* the file must exist */
    if (strcmp(real, out) != 0)
      __builtin_trap(); /* out is already a real path */
    if (strncmp(real, root_real, root_len) != 0 || real[root_len] != '/')
      __builtin_trap(); /* outside the root */
    if (has_dot_segment_below(real, root_len))
      __builtin_trap(); /* a dotfile or dot folder */
    {
      struct stat now;
      if (stat(real, &now) != 0 || !S_ISREG(now.st_mode) || !S_ISREG(st.st_mode) || now.st_ino != st.st_ino)
        __builtin_trap();
    }
    /* The request itself named no dot segment. */
    {
      size_t i = 0;
      while (i < size) {
        while (i < size && rel[i] == '/')
          i++;
        if (i < size && rel[i] == '.')
          __builtin_trap();
        while (i < size && rel[i] != '/')
          i++;
      }
    }
  } else if (out[0] != '\0') {
    __builtin_trap();
  }
  /* The mime lookup runs on every served path: it must never crash either. */
  if (r == DUET_WEB_PATH_FILE && duet__mime_type(out) == NULL)
    __builtin_trap();
  free(out);
  free(rel);
  return 0;
}
