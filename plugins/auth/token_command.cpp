// `duetd token`: mints a call token for scripts and backends. A command of
// the auth plugin, offered on duetd's command line through its descriptor.
#include "token_command.hpp"

#include <chrono>
#include <exception>
#include <map>
#include <string>
#include <string_view>

#include "auth_token.hpp"
#include "duet/plugin.hpp"

namespace duet::auth {

namespace {

const char kUsage[] = "Usage: duetd token --auth-secret FILE --id ID [--peer ID] [--ttl DURATION]\n"
                      "Prints a call token for servers run with --auth-secret FILE, then exits.\n"
                      "  --auth-secret FILE  file holding the server's secret\n"
                      "  --id ID             the local id the token lets its holder open as\n"
                      "  --peer ID           bind the token to this peer id too\n"
                      "  --ttl DURATION      how long the token is valid: 3600, 90s, 30m, 1h, 7d (default: 1h)\n";

struct Io {
  duet_write_fn write;
  void *out, *err;
  void say(void *stream, std::string_view text) const { write(stream, text.data(), text.size()); }
  int usage_error(const std::string &what) const {
    say(err, "token: " + what + "\nRun 'duetd token --help' for its options.\n");
    return 2;
  }
};

// "--name value" or "--name=value"; false with a sentence in why otherwise.
bool parse_args(int argc, const char *const *argv, std::map<std::string, std::string> &args, std::string &why) {
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    auto eq = arg.find('=');
    std::string name = arg.substr(0, eq);
    if (name != "--auth-secret" && name != "--id" && name != "--peer" && name != "--ttl") {
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

bool has_control_chars(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f)
      return true;
  return false;
}

}  // namespace

int token_command(int argc, const char *const *argv, duet_write_fn write, void *out, void *err) noexcept {
  const Io io{write, out, err};
  try {
    for (int i = 1; i < argc; i++)
      if (std::string_view(argv[i]) == "--help" || std::string_view(argv[i]) == "-h") {
        io.say(out, kUsage);
        return 0;
      }
    std::map<std::string, std::string> args{{"--ttl", "1h"}};
    std::string why;
    if (!parse_args(argc, argv, args, why))
      return io.usage_error(why);
    if (!args.count("--auth-secret") || !args.count("--id"))
      return io.usage_error("--auth-secret and --id are required");
    const std::string &id = args["--id"], &peer = args["--peer"], &ttl_text = args["--ttl"];
    const auto duration = duet::parse_duration(ttl_text);
    const std::int64_t ttl = duration ? std::chrono::duration_cast<std::chrono::seconds>(*duration).count() : 0;
    if (ttl <= 0 || ttl > 366LL * 86400)
      return io.usage_error("--ttl " + ttl_text + ": expected a duration up to a year, e.g. 3600, 30m, 1h or 7d");
    if (has_control_chars(id) || has_control_chars(peer))
      return io.usage_error("ids must not contain control characters");
    if (id.empty() || id.size() > 256 || peer.size() > 256)
      return io.usage_error("--id must be 1 to 256 bytes (and --peer at most 256)");
    const std::string &path = args["--auth-secret"];
    const std::string secret = duet::read_trimmed_file(path);
    if (!secret_long_enough(secret))
      return io.usage_error("--auth-secret " + path + ": expected " + kSecretAdvice);
    const auto now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
    io.say(out, mint(secret, id, peer, now.count() + ttl) + "\n");
    return 0;
  } catch (const std::exception &e) {
    return io.usage_error(e.what());
  } catch (...) {
    return 1;
  }
}

}  // namespace duet::auth
