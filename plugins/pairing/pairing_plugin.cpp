// The pairing plugin: the tutorial's v1 signaling (open, start, sdp, ice,
// close) with its faults fixed; see "Protocol" in README.md and pairing_state.hpp.
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "duet/plugin.hpp"
#include "local_store.hpp"
#include "routing.hpp"
#include "store.hpp"

namespace {

using duet::pairing::Outcome;
using duet::pairing::PairingStore;
using duet::pairing::Request;
using duet::pairing::StoreConfig;
using duet::pairing::Takeover;

const duet_plugin_option_t kOptions[] = {
    duet::option(
        "takeover", "replace",
        "when a second connection opens with an id in use: replace (the older is closed) or refuse (the newcomer gets "
        "id-taken)"),
    duet::option("max-id-bytes", "256", "longest id accepted in open, in bytes"),
    duet::option("cluster", "",
                 "share pairing with every duetd on this Redis: redis://[:PASSWORD@]HOST:PORT[/DB], unix:///PATH, or "
                 "redis-sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER[/DB] to follow the master Redis "
                 "Sentinel names",
                 "cluster", "URL"),
    duet::option("cluster-password-file", "", "file holding the Redis password (instead of one in the URL)",
                 "cluster-password-file", "FILE", DUET_OPTION_FILE),
    duet::option("cluster-sentinel-password-file", "",
                 "file holding the sentinels' own password (their requirepass), with --cluster redis-sentinel://",
                 "cluster-sentinel-password-file", "FILE", DUET_OPTION_FILE),
    duet::option("drain-delay", "5s",
                 "on a drain (SIGUSR1), how long to wait before moving calls to other nodes: at least the load "
                 "balancer's health-check interval, so that it no longer sends clients here"),
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

// The rules' settings, once the options fit together.
StoreConfig store_config(const duet::Host &host) {
  refuse_workers_without_cluster(host);
  const duet::Options options = host.options();
  if (options.text("cluster").empty() && !options.text("cluster-password-file").empty())
    options.fail("cluster-password-file", options.text("cluster-password-file"), "needs --cluster");
  if (options.text("cluster").empty() && !options.text("cluster-sentinel-password-file").empty())
    options.refuse("cluster-sentinel-password-file",
                   "--cluster-sentinel-password-file needs --cluster redis-sentinel://...");
  StoreConfig config;
  config.takeover =
      options.one_of<Takeover>("takeover", {{"replace", Takeover::kReplace}, {"refuse", Takeover::kRefuse}});
  config.max_id_bytes = static_cast<std::size_t>(options.integer("max-id-bytes", 1, 4096));
  config.grace = options.duration("resume-grace", std::chrono::milliseconds(0), std::chrono::hours(1));
  return config;
}

// The store, chosen once: this process's places, or (--cluster) Redis's.
std::unique_ptr<PairingStore> make_store(const duet::Host &host, const StoreConfig &config,
                                         duet::pairing::LocalActions &local) {
  const std::string url = host.options().text("cluster");
  if (url.empty())
    return std::make_unique<duet::pairing::LocalStore>(local, config);
#if DUET_WITH_CLUSTER
  return duet::pairing::make_cluster_store(host, config, local);
#else
  host.options().fail("cluster", url, "this duetd was built without cluster support (hiredis missing at build time)");
#endif
}

class Pairing : public duet::Plugin, private duet::pairing::LocalActions {
public:
  static constexpr duet_stage_t kStage = DUET_STAGE_ROUTING;

  explicit Pairing(const duet::Host &host)
      : Plugin(host), config_(store_config(host)), store_(make_store(host, config_, *this)),
        pairs_active_(host.metric("pairing_pairs_active",
                                  "Pairs in a call now (in a cluster: with a side here, counted every 2 s).",
                                  DUET_METRIC_GAUGE)),
        relayed_sdp_(host.metric("pairing_relayed_sdp_total", "SDP offers and answers relayed.", DUET_METRIC_COUNTER)),
        relayed_ice_(host.metric("pairing_relayed_ice_total", "ICE candidates relayed.", DUET_METRIC_COUNTER)) {
    if (!store_->pairs_cheap())  // counting walks every place: on a timer, not on each pairing
      pairs_timer_ = host.start_timer(std::chrono::seconds(2), std::chrono::seconds(2), [this] {
        this->host().metric_set(pairs_active_, static_cast<std::int64_t>(store_->pairs()));
      });
  }

  // The store goes first, while the plugin it sends through is whole.
  ~Pairing() override { store_.reset(); }

  duet_verdict_t on_message(duet::ConnId conn, const duet::Message &msg, duet_reject_t &reject) override {
    const Request request = duet::pairing::read_request(
        msg.type(), [&](const char *pointer) { return host().string_at(msg.raw, pointer); },
        config_.grace.count() != 0);
    if (request.kind == Request::Kind::kNotOurs)
      return DUET_PASS;
    const Outcome outcome = duet::pairing::route(*store_, conn, request, msg.json());
    if (request.kind == Request::Kind::kOpen && request.resume && outcome.ok())
      resumable_.insert(conn);
    if (request.kind == Request::Kind::kRelay && outcome.ok())
      host().metric_add(request.relay == duet::pairing::PairingState::Kind::kSdp ? relayed_sdp_ : relayed_ice_, 1);
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
    // Closed by our drain: the client comes back on another node, so its place is held.
    const bool moved = drain_closed_.erase(conn) > 0;
    store_->closed(conn, hangup ? "hangup" : moved ? "drain" : duet_close_reason_name(reason));
    update_pairs();
    seen_.erase(conn);
    resumable_.erase(conn);
  }

  // The admin API's listing (duet.admin.list): each connection's ids here,
  // and each call this node set up (in a cluster, a call whose offerer is
  // on another node is listed there).
  void on_event(const duet_event_t &event) override {
    if (event.name && std::string_view(event.name) == "duet.drain")
      start_drain();
    if (!event.name || std::string_view(event.name) != "duet.admin.list")
      return;
    for (const auto &entry : seen_) {
      const duet::ConnId conn = entry.first;  // named apart: a lambda cannot capture a structured binding
      const Seen &seen = entry.second;
      emit("admin.connection", conn, [&](Writer &w) {
        w.Key("local");
        put(w, seen.local);
        w.Key("remote");
        put(w, seen.remote);
        w.Key("in_call");
        w.Bool(seen.partner != 0 || seen.partner_elsewhere);
      });
      if (seen.offerer && (seen.partner != 0 || seen.partner_elsewhere))
        emit("admin.call", 0, [&](Writer &w) {
          w.Key("offerer");
          put(w, seen.local);
          w.Key("answerer");
          put(w, seen.remote);
          w.Key("offerer_conn");
          w.Uint64(conn);
          w.Key("answerer_conn");
          w.Uint64(seen.partner);  // 0: on another node
          w.Key("since_ms");
          w.Int64(seen.since_ms);
        });
    }
  }

private:
  // An answer refused after on_message returned: told as duetd tells a
  // rejected one, with the event duetd emits for it.
  void rejected(duet::ConnId conn, const char *code, const char *message) override {
    host().send_error(conn, code, message);
    emit("duet.rejected", conn, [&](Writer &w) {
      w.Key("code");
      w.String(code);
    });
  }

  void update_pairs() {
    if (store_ && store_->pairs_cheap())  // else pairs_timer_ counts
      host().metric_set(pairs_active_, static_cast<std::int64_t>(store_->pairs()));
  }

  void send(duet::ConnId to, std::string_view json) override {
    // A drain waits for this: the partner it moved came back on another node.
    if (json.rfind(R"({"resumed")", 0) == 0)
      if (auto it = seen_.find(to); it != seen_.end() && moved_away_.count(it->second.partner)) {
        it->second.partner = 0;
        it->second.partner_elsewhere = true;
      }
    host().send(to, json);
  }

  // A drain with --cluster moves the calls that can resume to the other
  // nodes: each such connection is closed with 1012 (the web client
  // reconnects through the balancer, which no longer sends it here) and its
  // place is held, so it resumes there with its media untouched. Of a pair
  // with both sides here, one side goes first and the other once its
  // partner has resumed elsewhere: two places held at once would end the
  // call. Without --cluster there is nowhere to go: calls stay until they
  // end or the drain times out. Clients that cannot resume stay too.
  void start_drain() {
    if (draining_ || config_.grace.count() == 0 || host().options().text("cluster").empty())
      return;
    draining_ = true;
    drain_timer_ = host().start_timer(drain_delay_, std::chrono::milliseconds(500), [this] { drain_step(); });
  }

  void drain_step() {
    std::vector<duet::ConnId> to_close;
    for (duet::ConnId conn : resumable_) {
      auto it = seen_.find(conn);
      if (it == seen_.end() || drain_closed_.count(conn))
        continue;
      const duet::ConnId partner = it->second.partner;
      if (partner != 0 && (moved_away_.count(partner) || !seen_.count(partner)))
        continue;  // its partner is away (moving, or dropped and may resume): two held places would end the call
      if (partner != 0 && resumable_.count(partner) && partner < conn)
        continue;  // the partner here goes first
      to_close.push_back(conn);
    }
    for (duet::ConnId conn : to_close)
      if (host().close(conn, 1012, "server draining", DUET_CLOSE_SERVER) == 0) {  // not one closing already
        drain_closed_.insert(conn);
        moved_away_.insert(conn);
      }
  }
  void send_error(duet::ConnId to, const char *code, const char *message) override {
    host().send_error(to, code, message);
  }
  void close(duet::ConnId conn, int ws_code, const char *reason) override {
    host().close(conn, ws_code, reason, DUET_CLOSE_TAKEOVER);
  }

  void opened(duet::ConnId conn, std::string_view local, std::string_view remote) override {
    duet_conn_info_t info{};
    if (host().conn_info(conn, info))  // in a cluster an open may be decided after its connection went
      seen_[conn] = Seen{std::string(local), std::string(remote)};
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
    const std::int64_t since = unix_ms();
    if (auto o = seen_.find(offerer); o != seen_.end())
      o->second = Seen{std::string(offerer_id), std::string(answerer_id), answerer, answerer == 0, true, since};
    if (auto a = seen_.find(answerer); answerer != 0 && a != seen_.end())
      a->second = Seen{std::string(answerer_id), std::string(offerer_id), offerer, false, false, since};
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
    for (duet::ConnId side : {call.gone, call.left})
      if (auto it = seen_.find(side); side != 0 && it != seen_.end())
        it->second = Seen{it->second.local, it->second.remote};
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
    if (auto it = seen_.find(conn); it != seen_.end()) {
      it->second.partner = partner;
      it->second.partner_elsewhere = partner == 0;
    }
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
      graces_[id] = host().start_timer(config_.grace, {}, [this, id] { grace_over(id); });
    } catch (const duet::EnvironmentError &) {
      graces_.erase(id);
      store_->expire(id);  // no timer, no waiting: end the call now
    }
  }

  void cancel_grace(const std::string &id) override { graces_.erase(id); }

  // By value: the id lives in the timer that is being spent.
  void grace_over(std::string id) {  // NOLINT(performance-unnecessary-value-param)
    graces_.erase(id);               // the spent timer's callback may drop it: the wrapper frees it after
    store_->expire(id);
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

  StoreConfig config_;
  std::unique_ptr<PairingStore> store_;
  std::int64_t pairs_active_, relayed_sdp_, relayed_ice_;
  std::unordered_map<std::string, duet::Timer> graces_;
  // What this node knows of its connections, for the admin API's listing.
  struct Seen {
    std::string local, remote;
    duet::ConnId partner = 0;        // in a call with this connection here
    bool partner_elsewhere = false;  // in a call with one on another node
    bool offerer = false;
    std::int64_t since_ms = 0;
  };
  std::unordered_map<duet::ConnId, Seen> seen_;
  std::unordered_set<duet::ConnId> resumable_;     // opened asking to resume
  std::unordered_set<duet::ConnId> drain_closed_;  // closed by the drain, close not yet told
  std::unordered_set<duet::ConnId> moved_away_;    // closed by the drain, to resume elsewhere
  bool draining_ = false;
  std::chrono::milliseconds drain_delay_ =
      host().options().duration("drain-delay", std::chrono::milliseconds(0), std::chrono::hours(1));
  duet::Timer drain_timer_;
  static std::int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  duet::Timer pairs_timer_;
  std::random_device random_;  // the kernel's CSPRNG: tokens must not be guessable
};

}  // namespace

DUET_PLUGIN(pairing, Pairing, "pairing", "1.0.0",
            "Pairs two connections that name each other and relays their sdp/ice (tutorial protocol v1)", kOptions)
