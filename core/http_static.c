/* HTTP through lws: each request is checked (GET or HEAD, no body, a sane
 * path) and routed: the redirect socket's, /healthz and /metrics
 * (admin_http.c), else static files from the web root at / and the --mount
 * folders. Path safety lives in web_path.c. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http_static.h"

#include <libwebsockets.h>

#include "admin_api.h"
#include "admin_http.h"
#include "log.h"
#include "web_path.h"

#define CHUNK_BYTES ((size_t)16 * 1024)
#define MAX_URI 2048

typedef struct http_session {
  int has_file;
  int fd;
  uint64_t remaining;
} http_session_t;

size_t duet__http_static_session_size(void) { return sizeof(http_session_t); }

static void close_file(http_session_t *s) {
  if (s->has_file)
    close(s->fd);
  s->has_file = 0;
  s->remaining = 0;
}

/* Writes a whole small response (status, headers, body) and ends the transaction. */
static int respond(struct lws *wsi, unsigned status, const char *content_type, const char *header_name,
                   const char *header_value, const char *body, int head_only) {
  unsigned char buf[LWS_PRE + 2048];
  unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
  size_t body_len = body ? strlen(body) : 0;
  if (lws_add_http_common_headers(wsi, status, content_type, body_len, &p, end))
    return -1;
  if (header_name &&
      lws_add_http_header_by_name(wsi, (const unsigned char *)header_name, (const unsigned char *)header_value,
                                  (int)strlen(header_value), &p, end))
    return -1;
  if (lws_finalize_write_http_header(wsi, start, &p, end))
    return -1;
  if (body_len && !head_only) {
    unsigned char out[LWS_PRE + 512];
    if (body_len > sizeof out - LWS_PRE)
      body_len = sizeof out - LWS_PRE;
    memcpy(out + LWS_PRE, body, body_len);
    if (lws_write(wsi, out + LWS_PRE, body_len, LWS_WRITE_HTTP_FINAL) != (int)body_len)
      return -1;
  }
  return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* An error ends the connection: after a request we refused, whatever the
 * client sent next on it (a smuggled request, a slow body) is not read. */
static int respond_error(struct lws *wsi, unsigned status, const char *text, int head_only) {
  char body[256];
  snprintf(body, sizeof body, "%u %s\n", status, text);
  respond(wsi, status, "text/plain; charset=utf-8", "connection:", "close", body, head_only);
  return -1;
}

/* Writes a response whose body is in memory (health, metrics, the admin
 * API, ACME); a 401 of the admin API names its scheme. */
static int respond_body(struct lws *wsi, unsigned status, const char *content_type, const char *body, size_t len,
                        int head_only) {
  unsigned char head[LWS_PRE + 2048];
  unsigned char *start = head + LWS_PRE, *p = start, *end = head + sizeof head - 1;
  if (lws_add_http_common_headers(wsi, status, content_type, len, &p, end) ||
      lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:", (const unsigned char *)"no-store", 8,
                                  &p, end) ||
      (status == HTTP_STATUS_UNAUTHORIZED &&
       lws_add_http_header_by_name(wsi, (const unsigned char *)"www-authenticate:", (const unsigned char *)"Bearer", 6,
                                   &p, end)) ||
      lws_finalize_write_http_header(wsi, start, &p, end))
    return -1;
  if (len && !head_only) {
    unsigned char *buf = malloc(LWS_PRE + len);
    if (!buf)
      return -1;
    memcpy(buf + LWS_PRE, body, len);
    int n = lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_HTTP_FINAL);
    free(buf);
    if (n != (int)len)
      return -1;
  }
  return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* An admin API request (admin_api.c): its path, its reason= argument and
 * its Authorization header. Returns what duet__admin_api_answer does. */
static int serve_admin_api(const duet_http_t *http, struct lws *wsi, const char *uri, int post,
                           duet_admin_answer_t *answer) {
  char authorization[512] = "", reason[1024] = "";
  int has_authorization = lws_hdr_copy(wsi, authorization, sizeof authorization, WSI_TOKEN_HTTP_AUTHORIZATION) > 0;
  /* lws skips an argument longer than the buffer: refused here instead of
   * read as no reason. */
  if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) >= (int)sizeof reason) {
    duet_admin_request_t too_long = {.post = post,
                                     .path = uri,
                                     .reason = "",
                                     .too_long = 1,
                                     .authorization = has_authorization ? authorization : NULL};
    return duet__admin_api_answer(http->admin_api, &too_long, answer);
  }
  /* The argument URL-decoded by lws; the answer points past "reason=". */
  const char *value = lws_get_urlarg_by_name(wsi, "reason=", reason, (int)sizeof reason);
  duet_admin_request_t req = {
      .post = post, .path = uri, .reason = value, .authorization = has_authorization ? authorization : NULL};
  return duet__admin_api_answer(http->admin_api, &req, answer);
}

/* /healthz and /metrics (admin_http.c). With --admin-listen they are served
 * on that socket only, and it serves nothing else. Returns 1 when the
 * request is not theirs. */
static int serve_admin(const duet_http_t *http, struct lws *wsi, const char *uri, int head_only) {
  int on_admin_socket = http->admin_tag && lws_get_opaque_user_data(wsi) == http->admin_tag;
  if (http->admin_tag && !on_admin_socket)
    return 1;
  duet_admin_answer_t answer;
  int r = duet__admin_http_answer(http->admin, uri, &answer);
  if (r == 0 && on_admin_socket && http->admin_api)
    r = serve_admin_api(http, wsi, uri, 0, &answer);
  if (r < 0)
    return -1;
  if (r == 0)
    return on_admin_socket ? respond_error(wsi, HTTP_STATUS_NOT_FOUND, "not found", head_only) : 1;
  r = respond_body(wsi, answer.status, answer.content_type, answer.body, answer.len, head_only);
  free(answer.body);
  return r;
}

/* The --http-redirect-port socket: ACME http-01 challenge files, and a
 * redirect to HTTPS for everything else. */
static int serve_redirect(const duet_http_t *http, struct lws *wsi, const char *uri, int head_only) {
  static const char challenge[] = "/.well-known/acme-challenge/";
  const char *acme = http->opt->acme_webroot;
  if (acme && strncmp(uri, challenge, sizeof challenge - 1) == 0) {
    const char *token = uri + sizeof challenge - 1;
    /* Tokens are base64url: anything else is not a challenge we could hold. */
    size_t n = strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-");
    if (n == 0 || token[n] != '\0' || n > 255)
      return respond_error(wsi, HTTP_STATUS_NOT_FOUND, "not found", head_only);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/.well-known/acme-challenge/%s", acme, token);
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    char body[4096];
    ssize_t got = -1;
    if (fd >= 0) {
      if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < (off_t)sizeof body)
        got = read(fd, body, sizeof body);
      close(fd);
    }
    if (got < 0)
      return respond_error(wsi, HTTP_STATUS_NOT_FOUND, "not found", head_only);
    return respond_body(wsi, HTTP_STATUS_OK, "text/plain", body, (size_t)got, head_only);
  }
  char host[256] = "", location[MAX_URI + 300];
  lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST);
  /* The host comes from the client: keep only what a host name may hold. */
  size_t keep = strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-[]:");
  host[keep] = '\0';
  char *colon = strrchr(host, ':');
  if (colon && !strchr(colon, ']'))
    *colon = '\0'; /* drop the plain-HTTP port */
  if (!host[0])
    snprintf(host, sizeof host, "localhost");
  if (http->public_port == 443)
    snprintf(location, sizeof location, "https://%s%s", host, uri);
  else
    snprintf(location, sizeof location, "https://%s:%d%s", host, http->public_port, uri);
  return respond(wsi, HTTP_STATUS_MOVED_PERMANENTLY, "text/plain; charset=utf-8", "location:", location,
                 "301 moved to https\n", head_only);
}

static int etag_matches(struct lws *wsi, const char *etag) {
  char inm[256];
  int n = lws_hdr_copy(wsi, inm, sizeof inm, WSI_TOKEN_HTTP_IF_NONE_MATCH);
  return n > 0 && (strstr(inm, etag) != NULL || strcmp(inm, "*") == 0);
}

static int serve_file(struct lws *wsi, http_session_t *s, const char *path, const struct stat *st, int head_only) {
  char etag[64], last_modified[64];
  snprintf(etag, sizeof etag, "\"%" PRIx64 "-%" PRIx64 "\"", (uint64_t)st->st_size,
           (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec);
  struct tm tm;
  gmtime_r(&st->st_mtim.tv_sec, &tm);
  strftime(last_modified, sizeof last_modified, "%a, %d %b %Y %H:%M:%S GMT", &tm);

  int not_modified = etag_matches(wsi, etag);
  unsigned char buf[LWS_PRE + 2048];
  unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
  if (lws_add_http_common_headers(wsi, not_modified ? HTTP_STATUS_NOT_MODIFIED : HTTP_STATUS_OK, duet__mime_type(path),
                                  not_modified ? 0 : (lws_filepos_t)st->st_size, &p, end) ||
      lws_add_http_header_by_name(wsi, (const unsigned char *)"etag:", (const unsigned char *)etag, (int)strlen(etag),
                                  &p, end) ||
      lws_add_http_header_by_name(wsi, (const unsigned char *)"last-modified:", (const unsigned char *)last_modified,
                                  (int)strlen(last_modified), &p, end) ||
      /* Revalidate every time: cheap with the ETag, and a new deploy shows at once. */
      lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:", (const unsigned char *)"no-cache", 8,
                                  &p, end) ||
      lws_finalize_write_http_header(wsi, start, &p, end))
    return -1;

  if (not_modified || head_only || st->st_size == 0)
    return lws_http_transaction_completed(wsi) ? -1 : 0;

  s->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (s->fd < 0) {
    DUET_WARN_LIMITED("cannot open a served file", "cannot open %s: %s", path, strerror(errno));
    return -1; /* headers are out: all we can do is drop the connection */
  }
  s->has_file = 1;
  s->remaining = (uint64_t)st->st_size;
  lws_callback_on_writable(wsi);
  return 0;
}

/* POST /admin/... on the admin socket: no body (arguments are in the query). */
static int serve_admin_post(const duet_http_t *http, struct lws *wsi) {
  if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0 ||
      lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 1) /* "0" is fine */
    return respond_error(wsi, HTTP_STATUS_BAD_REQUEST, "the admin API takes no body: give ?reason=TEXT", 0);
  char length[8] = "";
  if (lws_hdr_copy(wsi, length, sizeof length, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 && strcmp(length, "0") != 0)
    return respond_error(wsi, HTTP_STATUS_BAD_REQUEST, "the admin API takes no body: give ?reason=TEXT", 0);
  char uri[MAX_URI];
  int total = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI);
  if (total >= (int)sizeof uri)
    return respond_error(wsi, HTTP_STATUS_REQ_URI_TOO_LONG, "URI too long", 0);
  int n = lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_POST_URI);
  if (n < 0 || (size_t)n != strlen(uri) || uri[0] != '/')
    return respond_error(wsi, HTTP_STATUS_BAD_REQUEST, "bad request path", 0);
  duet_admin_answer_t answer;
  int r = serve_admin_api(http, wsi, uri, 1, &answer);
  if (r < 0)
    return -1;
  if (r == 0)
    return respond_error(wsi, HTTP_STATUS_NOT_FOUND, "not found", 0);
  r = respond_body(wsi, answer.status, answer.content_type, answer.body, answer.len, 0);
  free(answer.body);
  return r;
}

static int on_request(const duet_http_t *http, struct lws *wsi, http_session_t *s) {
  close_file(s);
  if (http->admin_api && http->admin_tag && lws_get_opaque_user_data(wsi) == http->admin_tag &&
      lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0)
    return serve_admin_post(http, wsi);
  int head_only = 0;
  enum lws_token_indexes token = WSI_TOKEN_GET_URI;
  if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0) {
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) <= 0) {
      /* Answer at once and close: no waiting for a body that may never come. */
      respond(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", "allow:", "GET, HEAD",
              "405 only GET and HEAD are supported\n", 0);
      return -1;
    }
    token = WSI_TOKEN_HEAD_URI;
    head_only = 1;
  }

  /* A GET or HEAD has no body; one that announces one is a smuggling attempt. */
  if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 ||
      lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0)
    return respond_error(wsi, HTTP_STATUS_BAD_REQUEST, "a GET or HEAD request has no body", head_only);

  char uri[MAX_URI];
  int total = lws_hdr_total_length(wsi, token);
  if (total >= (int)sizeof uri)
    return respond_error(wsi, HTTP_STATUS_REQ_URI_TOO_LONG, "URI too long", head_only);
  int n = lws_hdr_copy(wsi, uri, sizeof uri, token);
  /* A decoded %00 would cut the path short: refuse rather than guess. */
  if (n < 0 || (size_t)n != strlen(uri) || uri[0] != '/')
    return respond_error(wsi, HTTP_STATUS_BAD_REQUEST, "bad request path", head_only);

  if (http->redirect_tag && lws_get_opaque_user_data(wsi) == http->redirect_tag)
    return serve_redirect(http, wsi, uri, head_only);
  int admin = serve_admin(http, wsi, uri, head_only);
  if (admin != 1)
    return admin;

  const duet_mount_point_t *m = duet__mounts_find(http->mounts, uri);
  if (!m)
    return respond_error(wsi, HTTP_STATUS_NOT_FOUND, "not found", head_only);

  const char *rel = uri + m->url_len;
  char path[PATH_MAX];
  struct stat st;
  duet_web_path_result_t r = duet__web_path_resolve(m->root, rel, strlen(rel), path, sizeof path, &st);
  if (r == DUET_WEB_PATH_FILE && m->url_len && rel[0] == '\0')
    r = DUET_WEB_PATH_REDIRECT_DIR; /* "/extra" must become "/extra/" for relative links */
  switch (r) {
  case DUET_WEB_PATH_FILE:
    DUET_DEBUG("http %s %s -> %s", head_only ? "HEAD" : "GET", uri, path);
    return serve_file(wsi, s, path, &st, head_only);
  case DUET_WEB_PATH_REDIRECT_DIR: {
    char location[MAX_URI + 2];
    snprintf(location, sizeof location, "%s/", uri);
    return respond(wsi, HTTP_STATUS_MOVED_PERMANENTLY, "text/plain; charset=utf-8", "location:", location,
                   "301 moved\n", head_only);
  }
  case DUET_WEB_PATH_FORBIDDEN:
    return respond_error(wsi, HTTP_STATUS_FORBIDDEN, "forbidden", head_only);
  case DUET_WEB_PATH_BAD_REQUEST:
    return respond_error(wsi, HTTP_STATUS_BAD_REQUEST, "bad request path", head_only);
  case DUET_WEB_PATH_NOT_FOUND:
  default:
    return respond_error(wsi, HTTP_STATUS_NOT_FOUND, "not found", head_only);
  }
}

static int on_writeable(struct lws *wsi, http_session_t *s) {
  if (!s->has_file)
    return 0;
  unsigned char buf[LWS_PRE + CHUNK_BYTES];
  size_t want = s->remaining < CHUNK_BYTES ? (size_t)s->remaining : CHUNK_BYTES;
  ssize_t got = read(s->fd, buf + LWS_PRE, want);
  if (got <= 0) {
    close_file(s);
    return -1; /* the file shrank under us: the length we promised is wrong */
  }
  s->remaining -= (uint64_t)got;
  int last = s->remaining == 0;
  if (lws_write(wsi, buf + LWS_PRE, (size_t)got, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)got) {
    close_file(s);
    return -1;
  }
  if (!last) {
    lws_callback_on_writable(wsi);
    return 0;
  }
  close_file(s);
  return lws_http_transaction_completed(wsi) ? -1 : 0;
}

int duet__http_static_callback(const duet_http_t *http, struct lws *wsi, int reason, void *user, void *in, size_t len) {
  http_session_t *s = user;
  switch ((enum lws_callback_reasons)reason) {
  case LWS_CALLBACK_HTTP:
    return on_request(http, wsi, s);
  case LWS_CALLBACK_HTTP_WRITEABLE:
    return on_writeable(wsi, s);
  case LWS_CALLBACK_CLOSED_HTTP:
  case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    if (s)
      close_file(s);
    return 0;
  default:
    return lws_callback_http_dummy(wsi, (enum lws_callback_reasons)reason, user, in, len);
  }
}
