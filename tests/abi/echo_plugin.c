/* A third-party plugin in plain C, built only against the installed header
 * duet/plugin.h: it answers {"echo":...} by sending the message back.
 * Built with -DWRONG_ABI it claims ABI major 99, which duetd must refuse. */
#include <string.h>

#include <duet/plugin.h>

#ifdef WRONG_ABI
#define PLUGIN_ABI_MAJOR 99
#else
#define PLUGIN_ABI_MAJOR DUET_ABI_MAJOR
#endif

typedef struct echo {
  const duet_host_t *host;
  duet_host_ctx_t *ctx;
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

static duet_verdict_t echo_on_message(void *state, uint64_t conn, const duet_msg_t *msg, duet_reject_t *reject) {
  echo_t *e = state;
  if (msg->type_len == 4 && memcmp(msg->type, "echo", 4) == 0) {
    e->host->send(e->ctx, conn, msg->json, msg->json_len);
    return DUET_HANDLED;
  }
  if (msg->type_len == 10 && memcmp(msg->type, "echo-fails", 10) == 0) {
    reject->code = "echo-refused";
    reject->message = "The echo plugin refuses this on purpose.";
    return DUET_REJECT;
  }
  return DUET_PASS;
}

static const duet_plugin_t descriptor = {
    .abi_major = PLUGIN_ABI_MAJOR,
    .abi_minor = DUET_ABI_MINOR,
    .struct_size = sizeof(duet_plugin_t),
    .name = "test-echo",
    .version = "0.0.1",
    .description = "sends echo messages back (test plugin)",
    .init = echo_init,
    .shutdown = echo_shutdown,
    .on_message = echo_on_message,
};

DUET_PLUGIN_EXPORT const duet_plugin_t *duet_plugin_entry_v1(void);
DUET_PLUGIN_EXPORT const duet_plugin_t *duet_plugin_entry_v1(void) { return &descriptor; }
