/* A third-party plugin in plain C, built only against the installed header
 * duet/plugin.h: it answers {"echo":...} by sending the message back, and a
 * few more messages exercise the rest of the host table, so that a copy
 * built against the frozen ABI 1.3 header (tests/abi/v1.3/) proves every
 * later duetd still lays out what that plugin uses the same way:
 * - {"echo-fails":...}: rejected with the plugin's own error;
 * - {"echo-option":...}: {"greeting":<its option greeting>} (option stride);
 * - {"echo-info":...}: {"info":{"port":..,"tls":..}} (duet_conn_info_t);
 * - {"echo-later":...}: {"later":1} from a one-shot timer;
 * - {"echo-event":...}: an event test-echo.ping, which on_event answers
 *   with {"event":<its json>};
 * - {"echo-close":...}: closed with code 4000.
 * Built with -DWRONG_ABI it claims ABI major 99, which duetd must refuse.
 * Built with -DABI_1_0 it is laid out as a plugin of ABI 1.0 was: minor 0,
 * a descriptor ending at options, option entries of three pointers, and a
 * close whose why argument did not exist yet (here an invalid 77, as an
 * old binary would leave whatever the register holds). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <duet/plugin.h>

#ifdef WRONG_ABI
#define PLUGIN_ABI_MAJOR 99
#else
#define PLUGIN_ABI_MAJOR DUET_ABI_MAJOR
#endif

#ifdef ABI_1_0
#define PLUGIN_ABI_MINOR 0
#define PLUGIN_STRUCT_SIZE offsetof(duet_plugin_t, option_size)
#define CLOSE_WHY ((duet_close_reason_t)77)
#else
#define PLUGIN_ABI_MINOR DUET_ABI_MINOR
#define PLUGIN_STRUCT_SIZE sizeof(duet_plugin_t)
#define CLOSE_WHY DUET_CLOSE_SERVER
#endif

typedef struct echo {
  const duet_host_t *host;
  duet_host_ctx_t *ctx;
  uint64_t later_conn;
} echo_t;

static echo_t the_echo;

static int echo_init(const duet_host_t *host, duet_host_ctx_t *ctx, void **state) {
  if (host->abi_major != DUET_ABI_MAJOR)
    return DUET_EINVAL;
  the_echo.host = host;
  the_echo.ctx = ctx;
  *state = &the_echo;
  host->log(ctx, DUET_LOG_INFO, "echo plugin ready");
  return 0;
}

static void echo_shutdown(void *state) { (void)state; }

static int is(const duet_msg_t *msg, const char *type) {
  return msg->type_len == strlen(type) && memcmp(msg->type, type, msg->type_len) == 0;
}

static void send_text(echo_t *e, uint64_t conn, const char *text) { e->host->send(e->ctx, conn, text, strlen(text)); }

static void later(void *userdata) {
  echo_t *e = userdata;
  send_text(e, e->later_conn, "{\"later\":1}");
}

static duet_verdict_t more(echo_t *e, uint64_t conn, const duet_msg_t *msg) {
  char text[512];
  if (is(msg, "echo-option")) {
    snprintf(text, sizeof text, "{\"greeting\":\"%s\"}", e->host->config_get(e->ctx, "greeting"));
  } else if (is(msg, "echo-info")) {
    duet_conn_info_t info;
    memset(&info, 0xff, sizeof info);
    info.struct_size = sizeof info;
    if (e->host->conn_info(e->ctx, conn, &info) != 0)
      return DUET_PASS;
    snprintf(text, sizeof text, "{\"info\":{\"port\":%u,\"addr\":\"%s\",\"tls\":\"%s\",\"close_code\":%u}}",
             info.remote_port, info.remote_addr, info.tls_version, info.client_close_code);
  } else if (is(msg, "echo-later")) {
    e->later_conn = conn;
    return e->host->timer_start(e->ctx, 10, 0, later, e) > 0 ? DUET_HANDLED : DUET_PASS;
  } else if (is(msg, "echo-event")) {
    duet_event_t event = {"test-echo.ping", conn, "{\"n\":7}", 7};
    return e->host->emit(e->ctx, &event) == 0 ? DUET_HANDLED : DUET_PASS;
  } else if (is(msg, "echo-close")) {
    return e->host->close(e->ctx, conn, 4000, "echo says bye", CLOSE_WHY) == 0 ? DUET_HANDLED : DUET_PASS;
  } else {
    return DUET_PASS;
  }
  send_text(e, conn, text);
  return DUET_HANDLED;
}

static duet_verdict_t echo_on_message(void *state, uint64_t conn, const duet_msg_t *msg, duet_reject_t *reject) {
  echo_t *e = state;
  if (is(msg, "echo")) {
    e->host->send(e->ctx, conn, msg->json, msg->json_len);
    return DUET_HANDLED;
  }
  if (is(msg, "echo-fails")) {
    reject->code = "echo-refused";
    reject->message = "The echo plugin refuses this on purpose.";
    return DUET_REJECT;
  }
  return more(e, conn, msg);
}

static void echo_on_event(void *state, const duet_event_t *event) {
  echo_t *e = state;
  char text[256];
  if (strcmp(event->name, "test-echo.ping") != 0 || !event->json)
    return;
  snprintf(text, sizeof text, "{\"event\":%.*s}", (int)event->json_len, event->json);
  send_text(e, event->conn, text);
}

#ifdef ABI_1_0
/* An ABI 1.0 option entry: key, default_value, help. */
typedef struct option_1_0 {
  const char *key;
  const char *default_value;
  const char *help;
} option_1_0_t;
static const option_1_0_t options_1_0[] = {
    {"greeting", "hello", "what echo-option answers"},
    {"unused", "", "a second option, so the stride matters"},
    {NULL, NULL, NULL},
};
#define OPTIONS ((const duet_plugin_option_t *)(const void *)options_1_0)
#else
static const duet_plugin_option_t options[] = {
    {.key = "greeting", .default_value = "hello", .help = "what echo-option answers"},
    {.key = "unused", .default_value = "", .help = "a second option, so the stride matters"},
    {.key = NULL},
};
#define OPTIONS options
#endif

static const duet_plugin_t descriptor = {
    .abi_major = PLUGIN_ABI_MAJOR,
    .abi_minor = PLUGIN_ABI_MINOR,
    .struct_size = PLUGIN_STRUCT_SIZE,
    .name = "test-echo",
    .version = "0.0.1",
    .description = "sends echo messages back (test plugin)",
    .init = echo_init,
    .shutdown = echo_shutdown,
    .on_message = echo_on_message,
    .on_event = echo_on_event,
    .options = OPTIONS,
    .option_size = sizeof(duet_plugin_option_t), /* beyond struct_size with ABI_1_0: never read */
};

DUET_PLUGIN_EXPORT const duet_plugin_t *duet_plugin_entry_v1(void);
DUET_PLUGIN_EXPORT const duet_plugin_t *duet_plugin_entry_v1(void) { return &descriptor; }
