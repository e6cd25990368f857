// The auth plugin: with a secret or a JWKS, every open must carry a call
// token ({"open":{...,"token":"..."}}) made for its local id (and, if bound,
// its peer) that has not expired: a JWT (jwt.hpp) an app's backend signs,
// or, during the transition, duet's own "v1." token. Without either it lets
// everything pass, so the tutorial protocol keeps working.
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include <rapidjson/document.h>

#include "auth_token.hpp"
#include "duet/command.hpp"
#include "duet/plugin.hpp"
#include "jwks.hpp"
#include "jwt.hpp"
#include "token_command.hpp"

namespace {

const duet_plugin_option_t kOptions[] = {
    duet::option("secret-file", "",
                 "FILE holding a secret: every open must then carry a call token, an HS256 JWT signed with it "
                 "(any JWT library, or 'duetd token --auth-secret FILE --id ID')",
                 "auth-secret", "FILE", DUET_OPTION_FILE),
    duet::option("jwks-file", "",
                 "FILE holding a JWKS: JWTs signed with its keys (RS256, ES256, EdDSA; found by kid) are "
                 "accepted, and every open must carry one; re-read on SIGHUP",
                 "auth-jwks", "FILE", DUET_OPTION_FILE),
    duet::option("audience", "",
                 "a JWT's aud must hold this value (required with a JWKS); without it, a JWT with any aud is refused",
                 "auth-audience", "AUD"),
    duet::option("issuer", "", "when set, a JWT's iss must be this value", "auth-issuer", "ISS"),
    duet::option("clock-skew", "60", "seconds allowed either way on a JWT's exp and nbf"),
    duet::option("legacy-tokens", "on",
                 "also accept duet's own v1 tokens (made by duetd token before JWTs); 'off' refuses them"),
    {},
};

// Every refusal's name: a counter each, auth_tokens_refused_NAME_total.
const duet::auth::JwtCheck kRefusals[] = {
    duet::auth::JwtCheck::kMalformed,   duet::auth::JwtCheck::kTooLarge,      duet::auth::JwtCheck::kAlgRefused,
    duet::auth::JwtCheck::kUnknownKid,  duet::auth::JwtCheck::kBadSignature,  duet::auth::JwtCheck::kExpired,
    duet::auth::JwtCheck::kNotYetValid, duet::auth::JwtCheck::kWrongAudience, duet::auth::JwtCheck::kWrongIssuer,
    duet::auth::JwtCheck::kWrongId,     duet::auth::JwtCheck::kWrongPeer,
};

class Auth : public duet::Plugin {
public:
  static constexpr duet_stage_t kStage = DUET_STAGE_ADMISSION;
  explicit Auth(const duet::Host &host) : Plugin(host) {
    const duet::Options options = host.options();
    secret_ = options.file_contents("secret-file").value_or("");
    if (!options.text("secret-file").empty() && !duet::auth::secret_long_enough(secret_))
      options.fail("secret-file", options.text("secret-file"), duet::auth::kSecretAdvice);
    jwks_path_ = options.text("jwks-file");
    if (!jwks_path_.empty()) {
      std::string error;
      jwks_ = read_jwks(error);
      if (!jwks_)
        options.fail("jwks-file", jwks_path_, "a JWKS file (" + error + ")");
      log_jwks("JWKS " + jwks_path_ + ": ");
    }
    audience_ = options.text("audience");
    // A JWKS key may sign for many apps (an identity provider's does): only
    // tokens that name this server's audience are meant for it.
    if (!jwks_path_.empty() && audience_.empty())
      options.fail("jwks-file", jwks_path_,
                   "given with --auth-audience AUD (the aud your tokens carry): keys from a JWKS may sign "
                   "tokens for other apps too");
    issuer_ = options.text("issuer");
    skew_ = options.integer("clock-skew", 0, 3600);
    legacy_ = options.boolean("legacy-tokens");
    accepted_ = host.metric("auth_tokens_accepted_total", "Call tokens accepted.", DUET_METRIC_COUNTER);
    missing_ = host.metric("auth_tokens_refused_missing_total", "Opens refused for want of a call token.",
                           DUET_METRIC_COUNTER);
    for (duet::auth::JwtCheck check : kRefusals) {
      std::string name = duet::auth::jwt_check_name(check);
      for (char &c : name)
        c = c == '-' ? '_' : c;
      refused_[check] =
          host.metric(("auth_tokens_refused_" + name + "_total").c_str(),
                      (std::string("Call tokens refused: ") + duet::auth::jwt_check_name(check) + ".").c_str(),
                      DUET_METRIC_COUNTER);
    }
  }

  duet_verdict_t on_message(duet::ConnId, const duet::Message &msg, duet_reject_t &reject) override {
    if (!enabled())
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
      host().metric_add(missing_, 1);
      return DUET_REJECT;
    }
    if (!local || !remote)
      return DUET_PASS;  // pairing answers the malformed open
    return check(*token, *local, *remote, reject);
  }

  // auth.admit {"local":A,"remote":B}: another plugin vouches for one open
  // of A naming B (the ring plugin, for the server-made ids of an accepted
  // ring), good for kAdmitLife; once used, the call's resumes pass too.
  // duet.reload (SIGHUP): the JWKS file again (an app rotating its keys).
  void on_event(const duet_event_t &event) override {
    if (std::string_view(event.name) == "duet.reload")
      reload_jwks();
    if (!enabled() || std::string_view(event.name) != "auth.admit" || !event.json)
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

  bool enabled() const { return !secret_.empty() || jwks_; }

  static std::int64_t now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  std::optional<duet::auth::Jwks> read_jwks(std::string &error) const {
    try {
      return duet::auth::Jwks::parse(duet::read_trimmed_file(jwks_path_), error);
    } catch (const duet::EnvironmentError &e) {
      error = e.what();
      return std::nullopt;
    }
  }

  // A JWKS that no longer reads keeps the keys there were: an app's
  // half-written file must not lock every caller out.
  // A file that does not read keeps the keys there were (an app's
  // half-written file must not lock every caller out), except those it no
  // longer lists: a key taken out, perhaps because it leaked, is out even
  // while another key of the new file is refused.
  void reload_jwks() {
    if (jwks_path_.empty())
      return;
    std::string error, text;
    try {
      text = duet::read_trimmed_file(jwks_path_);
    } catch (const duet::EnvironmentError &e) {
      error = e.what();
    }
    auto fresh = error.empty() ? duet::auth::Jwks::parse(text, error) : std::nullopt;
    if (fresh) {
      jwks_ = std::move(fresh);
      log_jwks("JWKS " + jwks_path_ + " reloaded: ");
      return;
    }
    const auto listed = duet::auth::Jwks::kids_in(text);
    const std::size_t dropped = listed ? jwks_->keep_only(*listed) : 0;
    // An error line: it must not drown among the refusals of the moment.
    host().log(DUET_LOG_ERROR, "JWKS " + jwks_path_ + " not reloaded, the old keys stay" +
                                   (dropped ? " but the " + std::to_string(dropped) + " it no longer lists" : "") +
                                   ": " + error);
  }

  void log_jwks(std::string line) const {
    line += std::to_string(jwks_->size()) + " key(s)";
    for (const std::string &skipped : jwks_->skipped())
      line += (&skipped == &jwks_->skipped().front() ? "; skipped: " : ", ") + skipped;
    host().log(DUET_LOG_INFO, line);
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
      host().metric_add(missing_, 1);
      return DUET_REJECT;
    }
    return check(*token, kLineCreateId, "", reject);
  }
  static constexpr const char *kLineCreateId = "line-create";

  duet_verdict_t check(std::string_view token, std::string_view id, std::string_view peer, duet_reject_t &reject) {
    using duet::auth::JwtCheck;
    if (token.substr(0, 3) == "v1.")
      return check_legacy(token, id, peer, reject);
    const duet::auth::JwtRules rules{secret_, jwks_ ? &*jwks_ : nullptr, audience_, issuer_, skew_};
    const JwtCheck check = duet::auth::verify_jwt(rules, token, id, peer, now());
    return count(check, reject_jwt(check, reject));
  }

  // duet's own tokens from before JWTs, with their own error codes.
  duet_verdict_t check_legacy(std::string_view token, std::string_view id, std::string_view peer,
                              duet_reject_t &reject) {
    using duet::auth::Check;
    using duet::auth::JwtCheck;
    if (!legacy_ || secret_.empty()) {
      reject = {"auth-alg-refused", "This server no longer accepts duet's v1 call tokens: use a JWT."};
      return count(JwtCheck::kAlgRefused, DUET_REJECT);
    }
    switch (duet::auth::verify(secret_, token, id, peer, now())) {
    case Check::kOk:
      return count(JwtCheck::kOk, DUET_PASS);
    case Check::kExpired:
      reject = {"auth-expired", "The call token has expired; ask for a new one."};
      return count(JwtCheck::kExpired, DUET_REJECT);
    case Check::kWrongId:
      reject = {"auth-wrong-id", "The call token was made for another id or peer."};
      return count(JwtCheck::kWrongId, DUET_REJECT);
    case Check::kWrongPeer:
      reject = {"auth-wrong-id", "The call token was made for another id or peer."};
      return count(JwtCheck::kWrongPeer, DUET_REJECT);
    case Check::kBadSignature:
      reject = {"auth-invalid", "The call token is not valid for this server."};
      return count(JwtCheck::kBadSignature, DUET_REJECT);
    default:
      reject = {"auth-invalid", "The call token is not valid for this server."};
      return count(JwtCheck::kMalformed, DUET_REJECT);
    }
  }

  static duet_verdict_t reject_jwt(duet::auth::JwtCheck check, duet_reject_t &reject) {
    using duet::auth::JwtCheck;
    switch (check) {
    case JwtCheck::kOk:
      return DUET_PASS;
    case JwtCheck::kTooLarge:
      reject = {"auth-too-large", "The call token is too large (at most 8192 bytes)."};
      break;
    case JwtCheck::kAlgRefused:
      reject = {"auth-alg-refused", "The call token's algorithm is not one this server accepts."};
      break;
    case JwtCheck::kUnknownKid:
      reject = {"auth-unknown-kid", "The call token names a key (kid) this server does not know."};
      break;
    case JwtCheck::kBadSignature:
      reject = {"auth-bad-signature", "The call token's signature does not verify."};
      break;
    case JwtCheck::kExpired:
      reject = {"auth-expired", "The call token has expired; ask for a new one."};
      break;
    case JwtCheck::kNotYetValid:
      reject = {"auth-not-yet-valid", "The call token is not valid yet (nbf)."};
      break;
    case JwtCheck::kWrongAudience:
      reject = {"auth-wrong-audience", "The call token was made for another audience (aud)."};
      break;
    case JwtCheck::kWrongIssuer:
      reject = {"auth-wrong-issuer", "The call token was made by another issuer (iss)."};
      break;
    case JwtCheck::kWrongId:
      reject = {"auth-wrong-id", "The call token was made for another id (sub)."};
      break;
    case JwtCheck::kWrongPeer:
      reject = {"auth-wrong-peer", "The call token was made for a call with another peer."};
      break;
    default:
      reject = {"auth-malformed", "The call token is not a well-formed JWT."};
      break;
    }
    return DUET_REJECT;
  }

  // Counted, and a refusal logged by its reason only: never the token.
  duet_verdict_t count(duet::auth::JwtCheck check, duet_verdict_t verdict) {
    if (check == duet::auth::JwtCheck::kOk) {
      host().metric_add(accepted_, 1);
      return verdict;
    }
    host().metric_add(refused_[check], 1);
    host().log(DUET_LOG_INFO, std::string("call token refused: ") + duet::auth::jwt_check_name(check));
    return verdict;
  }

  std::string secret_;
  std::string jwks_path_;
  std::optional<duet::auth::Jwks> jwks_;
  std::string audience_, issuer_;
  std::int64_t skew_ = 60;
  bool legacy_ = true;
  std::int64_t accepted_ = -1;
  std::int64_t missing_ = -1;
  std::map<duet::auth::JwtCheck, std::int64_t> refused_;
  std::map<std::pair<std::string, std::string>, Admission> admitted_;  // (local, remote)
};

}  // namespace

const duet_plugin_command_t kToken = duet::command(
    "token", "Print a call token (an HS256 JWT) for --auth-secret servers, then exit", &duet::auth::token_command);
const duet_plugin_command_t *const kCommands[] = {&kToken, nullptr};

DUET_PLUGIN_WITH_COMMANDS(auth, Auth, "auth", "1.0.0",
                          "Requires a signed, expiring call token (a JWT) in open when a secret or a JWKS is set",
                          kOptions, kCommands)
