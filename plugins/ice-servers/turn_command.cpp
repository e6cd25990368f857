// `duetd turn-credentials`: prints TURN credentials made the way the plugin
// makes them for clients, so a user can check with coturn's own client that
// their TURN server accepts them and hands out working allocations.
#include "turn_command.hpp"

#include <chrono>
#include <cstdint>
#include <ctime>
#include <string>

#include "duet/command.hpp"
#include "turn_credentials.hpp"

namespace duet::ice {

namespace {

const char kUsage[] = "Usage: duetd turn-credentials --turn-secret FILE [--id ID] [--ttl DURATION]\n"
                      "Prints TURN credentials like those duetd hands to clients (coturn's REST-API form), and the\n"
                      "turnutils_uclient command that checks a TURN server with them, then exits.\n"
                      "  --turn-secret FILE  file holding the TURN secret (coturn's static-auth-secret)\n"
                      "  --id ID             the name after the expiry in the username (default: check)\n"
                      "  --ttl DURATION      how long they are valid: 600, 90s, 30m, 1h, 7d (default: 1h)\n";

std::string utc_text(std::int64_t unix_s) {
  const std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

const duet::CommandOption kOptions[] = {{"--turn-secret", nullptr}, {"--id", "check"}, {"--ttl", "1h"}};

int turn_credentials_body(const duet::CommandArgs &args, const duet::CommandIo &io) {
  const std::string path = args.required("--turn-secret", "FILE");
  const std::string id = args.value("--id"), ttl_text = args.value("--ttl");
  const auto duration = duet::parse_duration(ttl_text);
  const std::int64_t ttl = duration ? std::chrono::duration_cast<std::chrono::seconds>(*duration).count() : 0;
  if (ttl <= 0 || ttl > 366LL * 86400)
    throw duet::UsageError("--ttl " + ttl_text + ": expected a duration up to a year, e.g. 600, 30m, 1h or 7d");
  // The id ends up in a shell command line between single quotes.
  for (unsigned char c : id)
    if (c <= 0x20 || c == 0x7f || c == '\'')
      throw duet::UsageError("--id must not contain spaces, control characters or quotes");
  if (id.empty() || id.size() > 200)
    throw duet::UsageError("--id must be 1 to 200 bytes");
  const std::string secret = duet::read_trimmed_file(path);
  if (secret.empty())
    throw duet::UsageError("--turn-secret " + path + ": the file is empty; it must hold coturn's static-auth-secret");
  const std::int64_t expiry = unix_now_s() + ttl;
  const TurnCredentials c = turn_credentials(secret, id, expiry);
  io.print("username: " + c.username + "\npassword: " + c.password + "\nvalid until: " + utc_text(expiry) +
           "\nCheck a TURN server with them (two relayed allocations sending to each other over UDP;\n"
           "exit status 0 when the server accepted them and relayed):\n  turnutils_uclient -y -c -n 1 -u '" +
           c.username + "' -w '" + c.password + "' -p 3478 TURN-HOST\n");
  return 0;
}

const duet::CommandSpec kSpec = {"turn-credentials", kUsage, kOptions, sizeof kOptions / sizeof kOptions[0],
                                 &turn_credentials_body};

}  // namespace

int turn_credentials_command(int argc, const char *const *argv, duet_write_fn write, void *out, void *err) noexcept {
  return duet::run_command(kSpec, argc, argv, write, out, err);
}

}  // namespace duet::ice
