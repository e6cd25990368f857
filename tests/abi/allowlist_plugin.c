/* An admission plugin as a third party writes it: it refuses "open" for
 * every local id not listed (one per line) in the file its option "file"
 * names, with the error not-allowed; anything else it passes on. Built
 * against the current duet/plugin.h it says it belongs in the admission
 * stage, so `duetd --plugin allowlist_plugin.so` puts it before pairing.
 * Built against the frozen ABI 1.3 header it cannot say so: it keeps the
 * place a plugin had before stages (after the bundled ones), and an
 * operator moves it with --plugin-stage test-allowlist=admission. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <duet/plugin.h>

#define MAX_IDS 64
#define MAX_ID_BYTES 256

typedef struct allowlist {
  const duet_host_t *host;
  duet_host_ctx_t *ctx;
  size_t count;
  char ids[MAX_IDS][MAX_ID_BYTES + 1];
} allowlist_t;

static allowlist_t the_list;

static int read_list(allowlist_t *list, const char *path) {
  FILE *f = path && path[0] ? fopen(path, "r") : NULL;
  if (!f)
    return DUET_EINVAL;
  char line[MAX_ID_BYTES + 2];
  while (list->count < MAX_IDS && fgets(line, sizeof line, f)) {
    size_t len = strcspn(line, "\r\n");
    if (len > 0 && len <= MAX_ID_BYTES) { /* a longer line is no id: ids have at most 256 bytes */
      memcpy(list->ids[list->count], line, len);
      list->ids[list->count++][len] = '\0';
    }
  }
  fclose(f);
  return 0;
}

static int allowlist_init(const duet_host_t *host, duet_host_ctx_t *ctx, void **state) {
  the_list.host = host;
  the_list.ctx = ctx;
  if (read_list(&the_list, host->config_get(ctx, "file")) != 0) {
    host->log(ctx, DUET_LOG_ERROR, "--plugin-opt test-allowlist.file=FILE must name a readable file of ids");
    return DUET_EINVAL;
  }
  *state = &the_list;
  return 0;
}

static void allowlist_shutdown(void *state) { (void)state; }

static int listed(const allowlist_t *list, const char *id, size_t len) {
  for (size_t i = 0; i < list->count; i++)
    if (strlen(list->ids[i]) == len && memcmp(list->ids[i], id, len) == 0)
      return 1;
  return 0;
}

static duet_verdict_t allowlist_on_message(void *state, uint64_t conn, const duet_msg_t *msg, duet_reject_t *reject) {
  allowlist_t *list = state;
  (void)conn;
  if (msg->type_len != 4 || memcmp(msg->type, "open", 4) != 0)
    return DUET_PASS;
  const char *id = NULL;
  size_t len = 0;
  if (list->host->msg_string(list->ctx, msg, "/open/local", &id, &len) == 0 && listed(list, id, len))
    return DUET_PASS; /* pairing takes it from here */
  reject->code = "not-allowed";
  reject->message = "This id may not use this server.";
  return DUET_REJECT;
}

static const duet_plugin_option_t options[] = {
    {"file", "", "file of the ids allowed to open, one per line", NULL, "FILE", 0},
    {NULL, NULL, NULL, NULL, NULL, 0},
};

static const duet_plugin_t descriptor = {
    .abi_major = DUET_ABI_MAJOR,
    .abi_minor = DUET_ABI_MINOR,
    .struct_size = sizeof(duet_plugin_t),
    .name = "test-allowlist",
    .version = "1.0.0",
    .description = "refuses open for ids not in a file",
    .init = allowlist_init,
    .shutdown = allowlist_shutdown,
    .on_message = allowlist_on_message,
    .options = options,
    .option_size = sizeof(duet_plugin_option_t),
#if DUET_ABI_MINOR >= 5
    .stage = DUET_STAGE_ADMISSION,
#endif
};

DUET_PLUGIN_EXPORT const duet_plugin_t *duet_plugin_entry_v1(void);
DUET_PLUGIN_EXPORT const duet_plugin_t *duet_plugin_entry_v1(void) { return &descriptor; }
