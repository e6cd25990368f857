// `duetd turn-credentials`: prints TURN credentials made the way the plugin
// makes them for clients, so a user can check with coturn's own client that
// their TURN server accepts them and hands out working allocations.
#include "turn_command.hpp"

#include <chrono>
#include <ctime>
#include <exception>
#include <map>
#include <string>
#include <string_view>

#include "duet/plugin.hpp"
#include "turn_credentials.hpp"

namespace duet::ice {

namespace {

const char kUsage[] = "Usage: duetd turn-credentials --turn-secret FILE [--id ID] [--ttl DURATION]\n"
                      "Prints TURN credentials like those duetd hands to clients (coturn's REST-API form), and the\n"
                      "turnutils_uclient command that checks a TURN server with them, then exits.\n"
                      "  --turn-secret FILE  file holding the TURN secret (coturn's static-auth-secret)\n"
                      "  --id ID             the name after the expiry in the username (default: check)\n"
                      "  --ttl DURATION      how long they are valid: 600, 90s, 30m, 1h, 7d (default: 1h)\n";

struct Io {
  duet_write_fn write;
  void *out, *err;
  void say(void *stream, std::string_view text) const { write(stream, text.data(), text.size()); }
  int usage_error(const std::string &what) const {
    say(err, "turn-credentials: " + what + "\nRun 'duetd turn-credentials --help' for its options.\n");
    return 2;
  }
};

// "--name value" or "--name=value"; false with a sentence in why otherwise.
bool parse_args(int argc, const char *const *argv, std::map<std::string, std::string> &args, std::string &why) {
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    auto eq = arg.find('=');
    std::string name = arg.substr(0, eq);
    if (name != "--turn-secret" && name != "--id" && name != "--ttl") {
      why = "unknown argument " + arg;
      return false;
    }
    if (eq == std::string::npos && i + 1 >= argc) {
      why = name + " needs a value";
      return false;
    }
    args[name] = eq == std::string::npos ? argv[++i] : arg.substr(eq + 1);
  }
  return true;
}

std::string utc_text(std::int64_t unix_s) {
  const std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

int turn_credentials_command(int argc, const char *const *argv, duet_write_fn write, void *out, void *err) noexcept {
  const Io io{write, out, err};
  try {
    for (int i = 1; i < argc; i++)
      if (std::string_view(argv[i]) == "--help" || std::string_view(argv[i]) == "-h") {
        io.say(out, kUsage);
        return 0;
      }
    std::map<std::string, std::string> args{{"--ttl", "1h"}, {"--id", "check"}};
    std::string why;
    if (!parse_args(argc, argv, args, why))
      return io.usage_error(why);
    if (!args.count("--turn-secret"))
      return io.usage_error("--turn-secret FILE is required");
    const std::string &id = args["--id"], &ttl_text = args["--ttl"];
    const auto duration = duet::parse_duration(ttl_text);
    const std::int64_t ttl = duration ? std::chrono::duration_cast<std::chrono::seconds>(*duration).count() : 0;
    if (ttl <= 0 || ttl > 366LL * 86400)
      return io.usage_error("--ttl " + ttl_text + ": expected a duration up to a year, e.g. 600, 30m, 1h or 7d");
    // The id ends up in a shell command line between single quotes.
    for (unsigned char c : id)
      if (c <= 0x20 || c == 0x7f || c == '\'')
        return io.usage_error("--id must not contain spaces, control characters or quotes");
    if (id.empty() || id.size() > 200)
      return io.usage_error("--id must be 1 to 200 bytes");
    const std::string &path = args["--turn-secret"];
    const std::string secret = duet::read_trimmed_file(path);
    if (secret.empty())
      return io.usage_error("--turn-secret " + path + ": the file is empty; it must hold coturn's static-auth-secret");
    const std::int64_t expiry = unix_now_s() + ttl;
    const TurnCredentials c = turn_credentials(secret, id, expiry);
    io.say(out, "username: " + c.username + "\npassword: " + c.password + "\nvalid until: " + utc_text(expiry) +
                    "\nCheck a TURN server with them (two relayed allocations sending to each other over UDP;\n"
                    "exit status 0 when the server accepted them and relayed):\n  turnutils_uclient -y -c -n 1 -u '" +
                    c.username + "' -w '" + c.password + "' -p 3478 TURN-HOST\n");
    return 0;
  } catch (const std::exception &e) {
    return io.usage_error(e.what());
  } catch (...) {
    return 1;
  }
}

}  // namespace duet::ice
