// The auth plugin: with a secret, every open must carry a call token
// ({"open":{...,"token":"v1...."}}) minted for its local id (and, if bound,
// its peer) that has not expired. Without a secret it lets everything pass,
// so the tutorial protocol keeps working.
#include <chrono>
#include <string>

#include "auth_token.hpp"
#include "duet/command.hpp"
#include "duet/plugin.hpp"
#include "token_command.hpp"

namespace {

const duet_plugin_option_t kOptions[] = {
    duet::option("secret-file", "",
                 "FILE holding a secret: every open must then carry a call token made with "
                 "'duetd token --auth-secret FILE --id ID'",
                 "auth-secret", "FILE", DUET_OPTION_FILE),
    {},
};

class Auth : public duet::Plugin {
public:
  static constexpr duet_stage_t kStage = DUET_STAGE_ADMISSION;
  explicit Auth(const duet::Host &host) : Plugin(host) {
    const duet::Options options = host.options();
    secret_ = options.file_contents("secret-file").value_or("");
    if (!options.text("secret-file").empty() && !duet::auth::secret_long_enough(secret_))
      options.fail("secret-file", options.text("secret-file"), duet::auth::kSecretAdvice);
  }

  duet_verdict_t on_message(duet::ConnId, const duet::Message &msg, duet_reject_t &reject) override {
    if (secret_.empty() || msg.type() != "open")
      return DUET_PASS;
    auto token = host().string_at(msg.raw, "/open/token");
    auto local = host().string_at(msg.raw, "/open/local");
    auto remote = host().string_at(msg.raw, "/open/remote");
    if (!token) {
      reject = {"auth-missing", "This server needs a call token in open: {\"open\":{...,\"token\":\"...\"}}."};
      return DUET_REJECT;
    }
    if (!local || !remote)
      return DUET_PASS;  // pairing answers the malformed open
    auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
    switch (duet::auth::verify(secret_, *token, *local, *remote, now.count())) {
    case duet::auth::Check::kOk:
      return DUET_PASS;
    case duet::auth::Check::kExpired:
      reject = {"auth-expired", "The call token has expired; ask for a new one."};
      return DUET_REJECT;
    case duet::auth::Check::kWrongId:
    case duet::auth::Check::kWrongPeer:
      reject = {"auth-wrong-id", "The call token was made for another id or peer."};
      return DUET_REJECT;
    default:
      reject = {"auth-invalid", "The call token is not valid for this server."};
      return DUET_REJECT;
    }
  }

private:
  std::string secret_;
};

}  // namespace

const duet_plugin_command_t kToken =
    duet::command("token", "Print a call token for --auth-secret servers, then exit", &duet::auth::token_command);
const duet_plugin_command_t *const kCommands[] = {&kToken, nullptr};

DUET_PLUGIN_WITH_COMMANDS(auth, Auth, "auth", "1.0.0",
                          "Requires a signed, expiring call token in open when a secret is set", kOptions, kCommands)
