// The pairing plugin: the tutorial's v1 signaling (open, start, sdp, ice,
// close) with its faults fixed; see "Protocol" in README.md and pairing_state.hpp.
#include <chrono>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "duet/plugin.hpp"
#include "pairing_state.hpp"
#if DUET_WITH_CLUSTER
#include "cluster/cluster.hpp"
#endif

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
    duet::option("cluster", "",
                 "share pairing with every duetd on this Redis: redis://[:PASSWORD@]HOST:PORT[/DB] or unix:///PATH",
                 "cluster", "URL"),
    duet::option("cluster-password-file", "", "file holding the Redis password (instead of one in the URL)",
                 "cluster-password-file", "FILE", DUET_OPTION_FILE),
    duet::option(
        "resume-grace", "15",
        "seconds a paired client that asked to resume (open with \"resume\") keeps its place after its connection "
        "drops; 0 turns resuming off"),
    {},
};

// Clients on different workers of one machine pair only through a shared
// store: more than one worker needs --cluster.
void refuse_workers_without_cluster(const duet::Host &host) {
  const auto node = host.node_info();
  if (node && node->worker_count > 1 && host.options().text("cluster").empty())
    host.options().refuse("cluster", std::to_string(node->worker_count) +
                                         " workers (--workers) need --cluster: calls between clients on different "
                                         "workers need a shared Redis (--cluster redis://HOST:PORT or "
                                         "unix:///PATH); or use --workers 1");
}

Takeover takeover_from(const duet::Options &options) {
  return options.one_of<Takeover>("takeover", {{"replace", Takeover::kReplace}, {"refuse", Takeover::kRefuse}});
}

#if DUET_WITH_CLUSTER
// --cluster: the settings, or nullopt without it.
std::optional<duet::cluster::Settings> cluster_settings(const duet::Options &options) {
  auto url = options.text("cluster");
  if (url.empty()) {
    if (!options.text("cluster-password-file").empty())
      options.fail("cluster-password-file", options.text("cluster-password-file"), "needs --cluster");
    return std::nullopt;
  }
  duet::cluster::Settings settings{duet::cluster::parse_redis_url(url), {}};
  if (auto file = options.text("cluster-password-file"); !file.empty()) {
    std::ifstream in{std::string(file)};
    if (!in || !std::getline(in, settings.target.password) || settings.target.password.empty())
      options.fail("cluster-password-file", file, "must hold the Redis password on its first line");
  }
  return settings;
}
#endif

class Pairing : public duet::Plugin, private duet::pairing::Actions {
public:
  static constexpr duet_stage_t kStage = DUET_STAGE_ROUTING;

  explicit Pairing(const duet::Host &host)
      : Plugin(host), cluster_(make_cluster(host, *this)),
        state_(actions_for(cluster_, *this), takeover_from(host.options()),
               static_cast<std::size_t>(host.options().integer("max-id-bytes", 1, 4096))),
        grace_(host.options().duration("resume-grace", std::chrono::milliseconds(0), std::chrono::hours(1))),
        pairs_active_(host.metric("pairing_pairs_active",
                                  "Pairs in a call now (in a cluster: with a side here, counted every 2 s).",
                                  DUET_METRIC_GAUGE)),
        relayed_sdp_(host.metric("pairing_relayed_sdp_total", "SDP offers and answers relayed.", DUET_METRIC_COUNTER)),
        relayed_ice_(host.metric("pairing_relayed_ice_total", "ICE candidates relayed.", DUET_METRIC_COUNTER)) {
#if DUET_WITH_CLUSTER
    if (cluster_) {
      cluster_->attach(state_);
      cluster_->set_grace(grace_);
      // Counting walks every place: on a timer, not on each pairing.
      pairs_timer_ = host.start_timer(std::chrono::seconds(2), std::chrono::seconds(2), [this] {
        this->host().metric_set(pairs_active_, static_cast<std::int64_t>(cluster_->pairs_here()));
      });
    }
#endif
  }

  // The cluster goes first, while the state it sends through is whole.
  ~Pairing() override { cluster_.reset(); }

  duet_verdict_t on_message(duet::ConnId conn, const duet::Message &msg, duet_reject_t &reject) override {
    const std::string_view type = msg.type();
    Outcome outcome;
    if (type == "open") {
      auto local = host().string_at(msg.raw, "/open/local");
      auto remote = host().string_at(msg.raw, "/open/remote");
      auto resume = grace_.count() ? host().string_at(msg.raw, "/open/resume") : std::nullopt;
      if (!local || !remote)
        outcome = {"bad-request", R"(open needs {"open":{"local":"your id","remote":"their id"}} with strings.)"};
      else if (cluster_)
        return open_in_cluster(conn, *local, *remote, resume);
      else
        outcome = state_.open(conn, *local, *remote, resume);
    } else if (type == "sdp" || type == "ice") {
      auto remote = host().string_at(msg.raw, "/remote");
      if (!remote) {
        outcome = {"bad-request", "sdp and ice messages need a string member \"remote\"."};
      } else {
#if DUET_WITH_CLUSTER
        if (cluster_)
          cluster_->set_sender(conn);
#endif
        outcome = state_.relay(conn, type == "sdp" ? PairingState::Kind::kSdp : PairingState::Kind::kIce, *remote,
                               msg.json());
#if DUET_WITH_CLUSTER
        if (cluster_)
          cluster_->set_sender(0);
#endif
      }
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
    const char *why = hangup ? "hangup" : duet_close_reason_name(reason);
#if DUET_WITH_CLUSTER
    if (cluster_) {
      cluster_->closed(conn, why);
      return;
    }
#endif
    state_.closed(conn, why);
    update_pairs();
  }

private:
#if DUET_WITH_CLUSTER
  using ClusterPtr = std::unique_ptr<duet::cluster::Cluster>;
  static Actions &actions_for(ClusterPtr &cluster, Actions &self) { return cluster ? *cluster : self; }
  static ClusterPtr make_cluster(const duet::Host &host, Actions &local) {
    refuse_workers_without_cluster(host);
    auto settings = cluster_settings(host.options());
    return settings ? std::make_unique<duet::cluster::Cluster>(host, std::move(*settings), local) : nullptr;
  }

  // The rules run once the places are fetched: errors go out then.
  duet_verdict_t open_in_cluster(duet::ConnId conn, std::string_view local, std::string_view remote,
                                 std::optional<std::string_view> resume) {
    std::optional<std::string> token;
    if (resume)
      token = std::string(*resume);
    cluster_->run({std::string(local), std::string(remote)},
                  [this, conn, l = std::string(local), r = std::string(remote), token](PairingState &s) {
                    Outcome o = s.open(conn, l, r, token ? std::optional<std::string_view>(*token) : std::nullopt);
                    if (!o.ok()) {
                      cluster_->send_error(conn, o.code, o.message ? o.message : "");
                      cluster_->on_this_node([this, conn, code = o.code] { rejected(conn, code); });
                    }
                  });
    return DUET_HANDLED;
  }
#else
  struct NoCluster {};
  using ClusterPtr = std::unique_ptr<NoCluster>;
  static Actions &actions_for(ClusterPtr &, Actions &self) { return self; }
  static ClusterPtr make_cluster(const duet::Host &host, Actions &) {
    refuse_workers_without_cluster(host);
    if (!host.options().text("cluster").empty())
      host.options().fail("cluster", host.options().text("cluster"),
                          "this duetd was built without cluster support (hiredis missing at build time)");
    return nullptr;
  }
  duet_verdict_t open_in_cluster(duet::ConnId, std::string_view, std::string_view, std::optional<std::string_view>) {
    return DUET_PASS;
  }
#endif

  // What duetd emits for an answer it rejects, for one rejected later.
  void rejected(duet::ConnId conn, const char *code) {
    emit("duet.rejected", conn, [&](Writer &w) {
      w.Key("code");
      w.String(code);
    });
  }

  void update_pairs() {
    if (!cluster_)  // a cluster counts on pairs_timer_
      host().metric_set(pairs_active_, static_cast<std::int64_t>(state_.pairs()));
  }

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
    update_pairs();
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
    update_pairs();
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

  ClusterPtr cluster_;  // before state_, which sends through it when set
  PairingState state_;
  std::chrono::milliseconds grace_;
  std::int64_t pairs_active_, relayed_sdp_, relayed_ice_;
  std::unordered_map<std::string, duet::Timer> graces_;
  duet::Timer pairs_timer_;
  std::random_device random_;  // the kernel's CSPRNG: tokens must not be guessable
};

}  // namespace

DUET_PLUGIN(pairing, Pairing, "pairing", "1.0.0",
            "Pairs two connections that name each other and relays their sdp/ice (tutorial protocol v1)", kOptions)
