// The pairing plugin: the tutorial's v1 signaling (open, start, sdp, ice,
// close) with its faults fixed; see protocol.md and pairing_state.hpp.
#include <cstdlib>
#include <stdexcept>
#include <string>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "duet/plugin.hpp"
#include "pairing_state.hpp"

namespace {

using duet::pairing::Outcome;
using duet::pairing::PairingState;
using duet::pairing::Takeover;

const duet_plugin_option_t kOptions[] = {
    {"takeover", "replace",
     "when a second connection opens with an id in use: replace (the older is closed) or refuse (the newcomer gets "
     "id-taken)"},
    {"max-id-bytes", "256", "longest id accepted in open, in bytes"},
    {nullptr, nullptr, nullptr},
};

Takeover takeover_from(const duet::Host &host) {
  std::string_view v = host.config("takeover").value_or("replace");
  if (v == "replace")
    return Takeover::kReplace;
  if (v == "refuse")
    return Takeover::kRefuse;
  throw std::invalid_argument("takeover must be 'replace' or 'refuse', not '" + std::string(v) + "'");
}

std::size_t max_id_from(const duet::Host &host) {
  std::string v(host.config("max-id-bytes").value_or("256"));
  char *end = nullptr;
  unsigned long n = std::strtoul(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || n < 1 || n > 4096)
    throw std::invalid_argument("max-id-bytes must be a number from 1 to 4096, not '" + v + "'");
  return n;
}

class Pairing : public duet::Plugin, private duet::pairing::Actions {
 public:
  explicit Pairing(const duet::Host &host)
      : Plugin(host), state_(*this, takeover_from(host), max_id_from(host)) {}

  duet_verdict_t on_message(duet::ConnId conn, const duet::Message &msg, duet_reject_t &reject) override {
    const std::string_view type = msg.type();
    Outcome outcome;
    if (type == "open") {
      auto local = host().string_at(msg.raw, "/open/local");
      auto remote = host().string_at(msg.raw, "/open/remote");
      if (!local || !remote)
        outcome = {"bad-request", R"(open needs {"open":{"local":"your id","remote":"their id"}} with strings.)"};
      else
        outcome = state_.open(conn, *local, *remote);
    } else if (type == "sdp" || type == "ice") {
      auto remote = host().string_at(msg.raw, "/remote");
      if (!remote)
        outcome = {"bad-request", "sdp and ice messages need a string member \"remote\"."};
      else
        outcome = state_.relay(conn, *remote, msg.json());
    } else if (type == "ping") {
      // The tutorial client needs this answer; the keepalive plugin takes it over.
      host().send(conn, R"({"pong":1})");
    } else if (type == "pong") {
      // Answers to server pings need no reply.
    } else {
      return DUET_PASS;
    }
    if (outcome.ok())
      return DUET_HANDLED;
    reject.code = outcome.code;
    reject.message = outcome.message;
    return DUET_REJECT;
  }

  void on_close(duet::ConnId conn, duet_close_reason_t reason) override {
    state_.closed(conn, reason == DUET_CLOSE_SHUTDOWN ? "shutdown" : reason == DUET_CLOSE_SERVER ? "server" : "client");
  }

 private:
  void send(duet::ConnId to, std::string_view json) override { host().send(to, json); }
  void send_error(duet::ConnId to, const char *code, const char *message) override {
    host().send_error(to, code, message);
  }
  void close(duet::ConnId conn, int ws_code, const char *reason) override { host().close(conn, ws_code, reason); }

  void paired(duet::ConnId offerer, duet::ConnId answerer, std::string_view offerer_id,
              std::string_view answerer_id) override {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    w.Key("offerer");
    w.String(offerer_id.data(), static_cast<rapidjson::SizeType>(offerer_id.size()));
    w.Key("answerer");
    w.String(answerer_id.data(), static_cast<rapidjson::SizeType>(answerer_id.size()));
    w.Key("answerer_conn");
    w.Uint64(answerer);
    w.EndObject();
    host().emit("paired", offerer, {buf.GetString(), buf.GetSize()});
  }

  void unpaired(duet::ConnId gone, duet::ConnId left, const char *reason) override {
    std::string json = std::string(R"({"reason":")") + reason + R"(","partner_conn":)" + std::to_string(left) + "}";
    host().emit("unpaired", gone, json);
  }

  PairingState state_;
};

}  // namespace

DUET_PLUGIN(pairing, Pairing, "pairing", "1.0.0",
            "Pairs two connections that name each other and relays their sdp/ice (tutorial protocol v1)", kOptions)
