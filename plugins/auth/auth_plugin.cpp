// The auth plugin: with a secret, every open must carry a call token
// ({"open":{...,"token":"v1...."}}) minted for its local id (and, if bound,
// its peer) that has not expired. Without a secret it lets everything pass,
// so the tutorial protocol keeps working.
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include <rapidjson/document.h>

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
    if (secret_.empty())
      return DUET_PASS;
    if (msg.type() == "line-create")
      return check_line_create(msg, reject);
    if (msg.type() != "open")
      return DUET_PASS;
    auto token = host().string_at(msg.raw, "/open/token");
    auto local = host().string_at(msg.raw, "/open/local");
    auto remote = host().string_at(msg.raw, "/open/remote");
    if (!token && local && remote && admitted(*local, *remote, host().string_at(msg.raw, "/open/resume")))
      return DUET_PASS;
    if (!token) {
      reject = {"auth-missing", "This server needs a call token in open: {\"open\":{...,\"token\":\"...\"}}."};
      return DUET_REJECT;
    }
    if (!local || !remote)
      return DUET_PASS;  // pairing answers the malformed open
    return verdict(duet::auth::verify(secret_, *token, *local, *remote, now()), reject);
  }

  // auth.admit {"local":A,"remote":B}: another plugin vouches for one open
  // of A naming B (the ring plugin, for the server-made ids of an accepted
  // ring), good for kAdmitLife; once used, the call's resumes pass too.
  void on_event(const duet_event_t &event) override {
    if (secret_.empty() || std::string_view(event.name) != "auth.admit" || !event.json)
      return;
    rapidjson::Document doc;
    doc.Parse(event.json, event.json_len);
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("local") || !doc.HasMember("remote") ||
        !doc["local"].IsString() || !doc["remote"].IsString())
      return;
    const std::int64_t t = now();
    for (auto it = admitted_.begin(); it != admitted_.end();)
      it = it->second.until <= t ? admitted_.erase(it) : std::next(it);
    if (admitted_.size() < kMaxAdmitted)
      admitted_[{doc["local"].GetString(), doc["remote"].GetString()}] = {t + kAdmitLife, false};
  }

private:
  static constexpr std::int64_t kAdmitLife = 120;       // seconds to the first open
  static constexpr std::int64_t kCallLife = 24 * 3600;  // then, for resumes of the call
  static constexpr std::size_t kMaxAdmitted = 100000;
  struct Admission {
    std::int64_t until;
    bool used;  // the first open came: only resumes pass now
  };

  static std::int64_t now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  // The first open of an admitted pair passes; after it, only opens that
  // resume the call (with a resume token, which pairing checks) do. A
  // resume cannot get in without the token; a plain second open could take
  // the first one's place.
  bool admitted(std::string_view local, std::string_view remote, const std::optional<std::string_view> &resume) {
    auto it = admitted_.find({std::string(local), std::string(remote)});
    if (it == admitted_.end() || it->second.until <= now())
      return false;
    if (it->second.used)
      return resume && !resume->empty();
    it->second = {now() + kCallLife, true};
    return true;
  }

  // Making a line needs a token made for the id "line-create" (duetd token
  // --id line-create): a line lives on after the token expires, so a call
  // token handed to a guest for one call must not make one.
  duet_verdict_t check_line_create(const duet::Message &msg, duet_reject_t &reject) {
    auto token = host().string_at(msg.raw, "/line-create/token");
    if (!token) {
      reject = {"auth-missing", "This server needs a token made for line-create to make a line: "
                                "{\"line-create\":{...,\"token\":\"...\"}}."};
      return DUET_REJECT;
    }
    return verdict(duet::auth::verify(secret_, *token, kLineCreateId, "", now()), reject);
  }
  static constexpr const char *kLineCreateId = "line-create";

  duet_verdict_t verdict(duet::auth::Check check, duet_reject_t &reject) {
    switch (check) {
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

  std::string secret_;
  std::map<std::pair<std::string, std::string>, Admission> admitted_;  // (local, remote)
};

}  // namespace

const duet_plugin_command_t kToken =
    duet::command("token", "Print a call token for --auth-secret servers, then exit", &duet::auth::token_command);
const duet_plugin_command_t *const kCommands[] = {&kToken, nullptr};

DUET_PLUGIN_WITH_COMMANDS(auth, Auth, "auth", "1.0.0",
                          "Requires a signed, expiring call token in open when a secret is set", kOptions, kCommands)
