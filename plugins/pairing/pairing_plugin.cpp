// The pairing plugin: the tutorial's v1 signaling (open, start, sdp, ice,
// close) with its faults fixed; see "Protocol" in README.md and pairing_state.hpp.
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "duet/plugin.hpp"
#include "pairing_state.hpp"

namespace {

using duet::pairing::Outcome;
using duet::pairing::PairingState;
using duet::pairing::Takeover;

const duet_plugin_option_t kOptions[] = {
    duet::option(
        "takeover", "replace",
        "when a second connection opens with an id in use: replace (the older is closed) or refuse (the newcomer gets "
        "id-taken)"),
    duet::option("max-id-bytes", "256", "longest id accepted in open, in bytes"),
    duet::option(
        "resume-grace", "15",
        "seconds a paired client that asked to resume (open with \"resume\") keeps its place after its connection "
        "drops; 0 turns resuming off"),
    // Accepted now so --workers can name each worker; the cluster itself
    // comes with issue 12's Redis code.
    duet::option("cluster", "",
                 "share pairing with every duetd on this Redis: redis://[:PASSWORD@]HOST:PORT[/DB] or unix:///PATH",
                 "cluster", "URL"),
    duet::option("node-id", "", "this node's name in the cluster (default: host name and port)", "node-id", "NAME"),
    duet::option("cluster-password-file", "", "file holding the Redis password", "cluster-password-file", "FILE",
                 DUET_OPTION_FILE),
    {},
};

Takeover takeover_from(const duet::Options &options) {
  return options.one_of<Takeover>("takeover", {{"replace", Takeover::kReplace}, {"refuse", Takeover::kRefuse}});
}

class Pairing : public duet::Plugin, private duet::pairing::Actions {
public:
  explicit Pairing(const duet::Host &host)
      : Plugin(host), state_(*this, takeover_from(host.options()),
                             static_cast<std::size_t>(host.options().integer("max-id-bytes", 1, 4096))),
        grace_(host.options().duration("resume-grace", std::chrono::milliseconds(0), std::chrono::hours(1))),
        pairs_active_(host.metric("pairing_pairs_active", "Pairs in a call now.", DUET_METRIC_GAUGE)),
        relayed_sdp_(host.metric("pairing_relayed_sdp_total", "SDP offers and answers relayed.", DUET_METRIC_COUNTER)),
        relayed_ice_(host.metric("pairing_relayed_ice_total", "ICE candidates relayed.", DUET_METRIC_COUNTER)) {}

  duet_verdict_t on_message(duet::ConnId conn, const duet::Message &msg, duet_reject_t &reject) override {
    const std::string_view type = msg.type();
    Outcome outcome;
    if (type == "open") {
      auto local = host().string_at(msg.raw, "/open/local");
      auto remote = host().string_at(msg.raw, "/open/remote");
      if (!local || !remote)
        outcome = {"bad-request", R"(open needs {"open":{"local":"your id","remote":"their id"}} with strings.)"};
      else
        outcome = state_.open(conn, *local, *remote,
                              grace_.count() ? host().string_at(msg.raw, "/open/resume") : std::nullopt);
    } else if (type == "sdp" || type == "ice") {
      auto remote = host().string_at(msg.raw, "/remote");
      if (!remote)
        outcome = {"bad-request", "sdp and ice messages need a string member \"remote\"."};
      else
        outcome = state_.relay(conn, type == "sdp" ? PairingState::Kind::kSdp : PairingState::Kind::kIce, *remote,
                               msg.json());
      if (outcome.ok())
        host().metric_add(type == "sdp" ? relayed_sdp_ : relayed_ice_, 1);
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
    // A client that closes with 1000 or 1001 hung up on purpose: no place is held.
    duet_conn_info_t info{};
    bool hangup = reason == DUET_CLOSE_CLIENT && host().conn_info(conn, info) &&
                  (info.client_close_code == 1000 || info.client_close_code == 1001);
    state_.closed(conn, hangup ? "hangup" : duet_close_reason_name(reason));
    host().metric_set(pairs_active_, static_cast<std::int64_t>(state_.pairs()));
  }

private:
  void send(duet::ConnId to, std::string_view json) override { host().send(to, json); }
  void send_error(duet::ConnId to, const char *code, const char *message) override {
    host().send_error(to, code, message);
  }
  void close(duet::ConnId conn, int ws_code, const char *reason) override {
    host().close(conn, ws_code, reason, DUET_CLOSE_TAKEOVER);
  }

  void opened(duet::ConnId conn, std::string_view local, std::string_view remote) override {
    emit("pairing.open", conn, [&](Writer &w) {
      w.Key("local");
      put(w, local);
      w.Key("remote");
      put(w, remote);
    });
  }

  void paired(duet::ConnId offerer, duet::ConnId answerer, std::string_view offerer_id,
              std::string_view answerer_id) override {
    host().metric_set(pairs_active_, static_cast<std::int64_t>(state_.pairs()));
    emit("pairing.paired", offerer, [&](Writer &w) {
      w.Key("offerer");
      put(w, offerer_id);
      w.Key("answerer");
      put(w, answerer_id);
      w.Key("offerer_conn");
      w.Uint64(offerer);
      w.Key("answerer_conn");
      w.Uint64(answerer);
    });
  }

  void unpaired(const duet::pairing::CallEnded &call) override {
    emit("pairing.unpaired", call.gone, [&](Writer &w) {
      w.Key("local");
      put(w, call.gone_id);
      w.Key("remote");
      put(w, call.left_id);
      w.Key("reason");
      w.String(call.reason);
      w.Key("duration_ms");
      w.Uint64(call.duration_ms);
      w.Key("sdp");
      w.Uint64(call.sdp);
      w.Key("ice");
      w.Uint64(call.ice);
      w.Key("partner_conn");
      w.Uint64(call.left);
    });
  }

  void resumed(duet::ConnId conn, duet::ConnId partner, std::string_view id) override {
    emit("pairing.resumed", conn, [&](Writer &w) {
      w.Key("local");
      put(w, id);
      w.Key("partner_conn");
      w.Uint64(partner);
    });
  }

  // One one-shot timer per away id; the state decides what expiry means.
  void start_grace(const std::string &id) override {
    try {
      graces_[id] = host().start_timer(grace_, {}, [this, id] { grace_over(id); });
    } catch (const duet::EnvironmentError &) {
      graces_.erase(id);
      state_.expire(id);  // no timer, no waiting: end the call now
    }
  }

  void cancel_grace(const std::string &id) override { graces_.erase(id); }

  // By value: the id lives in the timer that is being spent.
  void grace_over(std::string id) {  // NOLINT(performance-unnecessary-value-param)
    graces_.erase(id);               // the spent timer's callback may drop it: the wrapper frees it after
    state_.expire(id);
    host().metric_set(pairs_active_, static_cast<std::int64_t>(state_.pairs()));
  }

  std::string new_token() override {
    std::uniform_int_distribution<unsigned> byte(0, 255);
    static const char hex[] = "0123456789abcdef";
    std::string token;
    for (int i = 0; i < 16; i++) {
      unsigned b = byte(random_);
      token += hex[b >> 4];
      token += hex[b & 15];
    }
    return token;
  }

  using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

  static void put(Writer &w, std::string_view s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); }

  // Events carry a JSON object; the writer escapes ids so none can forge a member.
  template <class Fill> void emit(const char *name, duet::ConnId conn, Fill fill) {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    fill(w);
    w.EndObject();
    host().emit(name, conn, {buf.GetString(), buf.GetSize()});
  }

  PairingState state_;
  std::chrono::milliseconds grace_;
  std::int64_t pairs_active_, relayed_sdp_, relayed_ice_;
  std::unordered_map<std::string, duet::Timer> graces_;
  std::random_device random_;  // the kernel's CSPRNG: tokens must not be guessable
};

}  // namespace

DUET_PLUGIN(pairing, Pairing, "pairing", "1.0.0",
            "Pairs two connections that name each other and relays their sdp/ice (tutorial protocol v1)", kOptions)
