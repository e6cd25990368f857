// `duetd token`: mints a call token for scripts and backends. A command of
// the auth plugin, offered on duetd's command line through its descriptor.
#include "token_command.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "auth_token.hpp"
#include "duet/command.hpp"
#include "jwt.hpp"

namespace duet::auth {

namespace {

const char kUsage[] = "Usage: duetd token --auth-secret FILE --id ID [--peer ID] [--ttl DURATION] [--audience AUD]\n"
                      "Prints a call token for servers run with --auth-secret FILE, then exits: an HS256 JWT\n"
                      "with sub (the id), peer (when given), iat and exp, as any JWT library makes it.\n"
                      "  --auth-secret FILE  file holding the server's secret\n"
                      "  --id ID             the local id the token lets its holder open as\n"
                      "  --peer ID           bind the token to this peer id too\n"
                      "  --ttl DURATION      how long the token is valid: 3600, 90s, 30m, 1h, 7d (default: 1h)\n"
                      "  --audience AUD      the aud claim, for servers run with --auth-audience AUD\n";

bool has_control_chars(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f)
      return true;
  return false;
}

const duet::CommandOption kOptions[] = {
    {"--auth-secret", nullptr}, {"--id", nullptr}, {"--peer", ""}, {"--ttl", "1h"}, {"--audience", ""}};

int token_body(const duet::CommandArgs &args, const duet::CommandIo &io) {
  if (!args.has("--auth-secret") || !args.has("--id"))
    throw duet::UsageError("--auth-secret and --id are required");
  const std::string id = args.value("--id"), peer = args.value("--peer"), ttl_text = args.value("--ttl");
  const auto duration = duet::parse_duration(ttl_text);
  const std::int64_t ttl = duration ? std::chrono::duration_cast<std::chrono::seconds>(*duration).count() : 0;
  if (ttl <= 0 || ttl > 366LL * 86400)
    throw duet::UsageError("--ttl " + ttl_text + ": expected a duration up to a year, e.g. 3600, 30m, 1h or 7d");
  if (has_control_chars(id) || has_control_chars(peer))
    throw duet::UsageError("ids must not contain control characters");
  if (id.empty() || id.size() > 256 || peer.size() > 256)
    throw duet::UsageError("--id must be 1 to 256 bytes (and --peer at most 256)");
  const std::string path = args.value("--auth-secret");
  const std::string secret = duet::read_trimmed_file(path);
  if (!secret_long_enough(secret))
    throw duet::UsageError("--auth-secret " + path + ": expected " + kSecretAdvice);
  const auto now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
  const std::string token = mint_hs256(secret, id, peer, args.value("--audience"), now.count(), now.count() + ttl);
  if (token.empty())
    throw duet::EnvironmentError("OpenSSL could not sign the token");
  io.print(token + "\n");
  return 0;
}

const duet::CommandSpec kSpec = {"token", kUsage, kOptions, sizeof kOptions / sizeof kOptions[0], &token_body};

}  // namespace

int token_command(int argc, const char *const *argv, duet_write_fn write, void *out, void *err) noexcept {
  return duet::run_command(kSpec, argc, argv, write, out, err);
}

}  // namespace duet::auth
