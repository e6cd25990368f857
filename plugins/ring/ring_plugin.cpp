// The ring plugin: lines a caller rings through a link, and the devices
// that ring (README.md, "Ring me"). It owns only its own messages (line-*,
// ring*) and passes everything else; an accepted ring ends in two fresh
// pairing ids, and the call itself is the pairing plugin's, unchanged.
#include <cstdlib>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "bus.hpp"
#include "context.hpp"
#include "duet/command.hpp"
#include "duet/plugin.hpp"
#include "lines.hpp"
#include "pushes.hpp"
#if DUET_WITH_CLUSTER
#include "redis_bus.hpp"
#include "redis_store.hpp"
#include "redis_vapid.hpp"
#endif
#include "ringing.hpp"
#include "vapid_command.hpp"
#include "wire.hpp"

namespace {

using duet::ring::ConnId;
using duet::ring::Outcome;
using duet::ring::Reply;
using duet::ring::Request;

const Outcome kNoPush = {"push-off", "This server does not send Web Push messages."};

const duet_plugin_option_t kOptions[] = {
    duet::option("lines", "on", "on: devices may make lines and callers ring them; off: every ring message is refused",
                 "ring-lines", "on|off"),
    duet::option("ring-time", "45", "how long a ring rings before the caller hears \"no answer\" (1 s to 10 min)",
                 "ring-time", "SECONDS"),
    duet::option("rings-per-address", "10", "rings one caller address may start per minute", "ring-rate", "N"),
    duet::option("rings-per-line", "20", "rings one line may get per minute", "ring-line-rate", "N"),
    duet::option("lines-per-address", "10", "lines one address may make per hour", "ring-create-rate", "N"),
    duet::option("max-lines", "100000", "lines the store may hold at all; more are refused (lines-full)",
                 "ring-max-lines", "N"),
    duet::option("db", "",
                 "the SQLite file of lines and devices (default: ring.db in the state folder; unused with --cluster)",
                 "ring-db", "FILE"),
    // Declared as pairing declares them: --cluster sets both (one Redis).
    duet::option("cluster", "", "the Redis that lines, devices and rings share across nodes", "cluster", "URL"),
    duet::option("cluster-password-file", "", "file holding the Redis password (instead of one in the URL)",
                 "cluster-password-file", "FILE", DUET_OPTION_FILE),
    duet::option("cluster-sentinel-password-file", "", "file holding the sentinels' own password",
                 "cluster-sentinel-password-file", "FILE", DUET_OPTION_FILE),
    duet::option("vapid-key", "",
                 "the Web Push (VAPID) private key, made on first run (default: vapid.pem in the state folder); "
                 "keep it: subscriptions are made for its public half",
                 "ring-vapid-key", "FILE"),
    duet::option("push-subject", "",
                 "who runs this server, for push services (VAPID sub): mailto:you@example.org or an https: URL; "
                 "Apple's push service refuses pushes without it",
                 "ring-push-subject", "URL"),
    duet::option("push-hosts", "",
                 "the push services' hosts pushes may go to, comma-separated; .example.org allows its subdomains "
                 "(default: any public host)",
                 "ring-push-hosts", "HOSTS"),
    duet::option("push-timeout", "10", "how long one push request may take (1 to 60 s)", "ring-push-timeout",
                 "SECONDS"),
    duet::option("push-allow-private", "off",
                 "for tests only: allow push services on loopback and private addresses (on|off)"),
    duet::option("push-ca-file", "", "for tests only: trust this CA certificate file for push services"),
    {},
};

std::vector<std::string> split_hosts(const std::string &list) {
  std::vector<std::string> hosts;
  std::string host;
  for (char c : list + ",") {
    if (c != ',' && c != ' ') {
      host += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    } else if (!host.empty()) {
      hosts.push_back(host);
      host.clear();
    }
  }
  return hosts;
}

duet::ring::PushSettings push_settings_from(const duet::Options &options) {
  duet::ring::PushSettings s;
  s.subject = options.text("push-subject");
  if (!s.subject.empty() && s.subject.rfind("mailto:", 0) != 0 && s.subject.rfind("https://", 0) != 0)
    throw duet::OptionError("ring.push-subject " + s.subject + ": expected mailto:ADDRESS or an https: URL");
  for (char c : s.subject)
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20)
      throw duet::OptionError("ring.push-subject: quotes, backslashes and control characters are not allowed");
  s.hosts = split_hosts(options.text("push-hosts"));
  s.timeout = options.duration("push-timeout", std::chrono::seconds(1), std::chrono::seconds(60));
  s.allow_private = options.boolean("push-allow-private");
  s.ca_file = options.text("push-ca-file");
  return s;
}

duet::ring::RingSettings settings_from(const duet::Options &options) {
  return {options.duration("ring-time", std::chrono::seconds(1), std::chrono::minutes(10)),
          static_cast<std::uint32_t>(options.integer("rings-per-address", 1, 1000000)),
          static_cast<std::uint32_t>(options.integer("rings-per-line", 1, 1000000))};
}

// Without --cluster, lines live in one process's store: with workers, a
// device and its caller could sit in different processes, so lines are off.
bool lines_enabled(const duet::Host &host) {
  if (!host.options().boolean("lines"))
    return false;
  const auto node = host.node_info();
  if (node && node->worker_count > 1 && host.options().text("cluster").empty()) {
    host.log(DUET_LOG_WARN, "lines are off: without --cluster they need a single duetd process (--workers 1)");
    return false;
  }
  return true;
}

// Where lines live and how ring events travel: this process (SQLite and
// LocalBus) or, with --cluster, Redis for both.
struct Backend {
#if DUET_WITH_CLUSTER
  std::unique_ptr<duet::cluster::RedisLink> link;
#endif
  std::unique_ptr<duet::ring::LineStore> store;
  std::unique_ptr<duet::ring::RingBus> bus;
};

Backend make_backend(const duet::Host &host, duet::ring::Store &sqlite, const duet::ring::Attachments &attached) {
  Backend b;
  const std::string url = host.options().text("cluster");
  if (url.empty()) {
    b.store = std::make_unique<duet::ring::SqliteLines>(
        sqlite, [&host](const std::string &why) { host.log(DUET_LOG_ERROR, why); });
    b.bus = std::make_unique<duet::ring::LocalBus>(attached);
    return b;
  }
#if DUET_WITH_CLUSTER
  duet::cluster::RedisTarget target = duet::cluster::redis_target(host.options());
  duet::cluster::watch_sentinels(host, target);  // one watch for the ring's two links
  const auto node = host.node_info();
  b.link = std::make_unique<duet::cluster::RedisLink>(host, target, "ring", duet::cluster::RedisLink::Events{});
  b.store = std::make_unique<duet::ring::RedisLines>(host, *b.link);
  b.bus = std::make_unique<duet::ring::RedisBus>(host, *b.link, target, attached,
                                                 node ? std::string(node->node_id) : std::string("node"));
  b.link->start();
  return b;
#else
  host.options().fail("cluster", url, "this duetd was built without cluster support (hiredis missing at build time)");
#endif
}

class Ring : public duet::Plugin {
public:
  // Routing, beside pairing: the two own disjoint message types, so their
  // order does not matter; both come after admission (auth checks
  // line-create's token there) and before the observers.
  static constexpr duet_stage_t kStage = DUET_STAGE_ROUTING;

  explicit Ring(const duet::Host &host)
      : Plugin(host), enabled_(lines_enabled(host)), store_(state_path(host, "db", "ring.db")),
        backend_(make_backend(host, store_, attached_)),
        metrics_(host), ctx_{host,      *backend_.store, *backend_.bus,
                             attached_, metrics_,        [this](ConnId c) { return queues_.count(c) > 0; }},
        pushes_(make_pushes(host, enabled_, ctx_)), ringing_(ctx_, settings_from(host.options()), pushes_.get()),
        lines_(ctx_, ringing_, static_cast<std::uint32_t>(host.options().integer("lines-per-address", 1, 1000000)),
               host.options().integer("max-lines", 1, 100000000)),
        prune_(host.start_timer(std::chrono::minutes(1), std::chrono::minutes(1), [this] {
          ringing_.prune(duet::ring::now_ms());
          lines_.prune(duet::ring::now_ms());
        })) {
    backend_.bus->listen([this](std::string_view json) { on_bus(json); });
  }

  // A connection's ring messages run one at a time, in order: one that
  // waits for the store holds back the next (a client that pipelines its
  // line-create and line-rename gets them done in that order).
  duet_verdict_t on_message(ConnId conn, const duet::Message &msg, duet_reject_t &reject) override {
    const auto handler = kHandlers.find(msg.type());
    if (handler == kHandlers.end())
      return DUET_PASS;
    if (!enabled_) {
      reject = {"lines-off", "This server does not offer lines and rings."};
      return DUET_REJECT;
    }
    Queue &queue = queues_[conn];
    queue.waiting.push_back({handler->second, std::make_unique<Request>(msg.json(), msg.type())});
    if (queue.busy)
      return DUET_HANDLED;
    // Answered before on_message returns (SQLite, a refusal): the answer
    // is this message's verdict; later ones are sent as errors.
    const Outcome out = run_next(conn, true);
    if (out.ok())
      return DUET_HANDLED;
    reject = {out.code, out.message};
    return DUET_REJECT;
  }

  void on_close(ConnId conn, duet_close_reason_t) override {
    queues_.erase(conn);  // an answer still to come finds it gone
    ringing_.closed(conn);
    lines_.closed(conn);
  }

  void on_event(const duet_event_t &event) override {
    const std::string_view name = event.name;
    if (name != "pairing.paired" && name != "pairing.unpaired")
      return;
    const bool paired = name == "pairing.paired";
    rapidjson::Document doc;
    doc.Parse(event.json ? event.json : "{}", event.json ? event.json_len : 2);
    const auto a = duet::ring::string_member(doc, paired ? "offerer" : "local");
    const auto b = duet::ring::string_member(doc, paired ? "answerer" : "remote");
    if (!a || !b)
      return;
    if (paired)
      ringing_.paired(*a, *b);
    else
      ringing_.unpaired(*a, *b);
  }

private:
  using Handler = void (Ring::*)(ConnId, Request &, const Reply &);
  struct Queue {
    std::deque<std::pair<Handler, std::unique_ptr<Request>>> waiting;
    bool busy = false;  // the front one runs
  };

  // Runs conn's next message; when first, and it is answered at once, its
  // outcome is returned to be on_message's verdict.
  Outcome run_next(ConnId conn, bool first) {
    auto it = queues_.find(conn);
    if (it == queues_.end() || it->second.waiting.empty())
      return {};
    it->second.busy = true;
    auto answer = std::make_shared<std::pair<bool, Outcome>>(false, Outcome{});  // answered, outcome
    auto inline_answer = std::make_shared<bool>(first);
    auto reply = [this, conn, answer, inline_answer](Outcome out) {
      if (answer->first)
        return;
      *answer = {true, out};
      if (!*inline_answer)
        finished(conn, out);
    };
    // Out of the queue while it runs: what it sends may close conn.
    const Handler handler = it->second.waiting.front().first;
    const std::unique_ptr<Request> req = std::move(it->second.waiting.front().second);
    if (!req->ok()) {
      reply({"bad-request", "A ring message carries an object: {\"TYPE\":{…}}."});
    } else {
      try {
        (this->*handler)(conn, *req, reply);
      } catch (const std::exception &e) {
        host().log(DUET_LOG_ERROR, e.what());
        reply(duet::ring::kStoreFailed);
      }
    }
    *inline_answer = false;
    if (first && answer->first) {
      done(conn);
      return answer->second;
    }
    return {};
  }

  // An answer that came later: an error is sent as one, then the next runs.
  void finished(ConnId conn, const Outcome &out) {
    if (!queues_.count(conn))
      return;  // closed meanwhile
    if (!out.ok())
      host().send_error(conn, out.code, out.message);
    done(conn);
    while (queues_.count(conn) && !queues_.at(conn).waiting.empty() && !queues_.at(conn).busy) {
      const Outcome next = run_next(conn, true);  // answered at once: sent here
      if (!next.ok())
        host().send_error(conn, next.code, next.message);
    }
  }

  void done(ConnId conn) {
    auto it = queues_.find(conn);
    if (it == queues_.end())
      return;
    it->second.waiting.pop_front();
    it->second.busy = false;
  }

  void on_bus(std::string_view json) {
    rapidjson::Document event;
    event.Parse(json.data(), json.size());
    const auto kind = duet::ring::string_member(event, "ev");
    if (!kind)
      return;
    try {
      if (!ringing_.on_event(*kind, event))
        lines_.on_event(*kind, event);
    } catch (const std::exception &e) {
      host().log(DUET_LOG_ERROR, std::string("a ring event was dropped: ") + e.what());
    }
  }

  // The file an option names, else file_name in duetd's state folder.
  static std::string state_path(const duet::Host &host, const char *option, const char *file_name) {
    std::string path = host.options().text(option);
    if (!path.empty())
      return path;
    const auto node = host.node_info();
    if (!node)
      throw duet::EnvironmentError(std::string("no state folder from duetd (it predates ABI 1.5): set ring.") + option);
    return std::string(node->state_dir) + "/" + file_name;
  }

  static std::unique_ptr<duet::ring::Pushes> make_pushes(const duet::Host &host, bool enabled,
                                                         duet::ring::Context &ctx) {
    duet::ring::PushSettings settings = push_settings_from(host.options());
    if (!enabled)
      return nullptr;
    try {
      duet::ring::VapidKey key = duet::ring::VapidKey::load_or_create(state_path(host, "vapid-key", "vapid.pem"));
#if DUET_WITH_CLUSTER
      // A subscription is made for one public key: every node must sign
      // with it, or a push from another node than the subscriber's is refused.
      if (!host.options().text("cluster").empty()) {
        std::string why;
        if (auto shared = duet::ring::cluster_vapid_key(duet::cluster::redis_target(host.options()), key.pem(), why))
          key = duet::ring::VapidKey::from_pem(*shared);
        else
          host.log(DUET_LOG_ERROR, "the cluster's VAPID key could not be read from Redis (" + why +
                                       "): this node signs pushes with its own key until it restarts with Redis up, "
                                       "and push services refuse those for devices that subscribed on other nodes "
                                       "(give every node the same --ring-vapid-key to avoid this)");
      }
#endif
      return std::make_unique<duet::ring::Pushes>(ctx, std::move(key), std::move(settings));
    } catch (const duet::ring::CryptoError &e) {
      throw duet::EnvironmentError(e.what());
    }
  }

  // What the per-address limits count a connection under (an IPv6 /64).
  std::string address(ConnId conn) const {
    duet_conn_info_t info{};
    return host().conn_info(conn, info) ? duet::ring::address_key(info.remote_addr) : std::string();
  }

  void create(ConnId c, Request &r, const Reply &y) { lines_.create(c, r, address(c), y); }
  void attach(ConnId c, Request &r, const Reply &y) { lines_.attach(c, r, y); }
  void rename(ConnId c, Request &r, const Reply &y) { lines_.rename(c, r, y); }
  void new_link(ConnId c, Request &r, const Reply &y) { lines_.new_link(c, r, y); }
  void invite(ConnId c, Request &r, const Reply &y) { lines_.invite(c, r, y); }
  void join(ConnId c, Request &r, const Reply &y) { lines_.join(c, r, address(c), y); }
  void remove_device(ConnId c, Request &r, const Reply &y) { lines_.remove_device(c, r, y); }

  void push_key(ConnId c, Request &, const Reply &y) { y(pushes_ ? pushes_->key(c) : kNoPush); }
  void push(ConnId c, Request &r, const Reply &y) {
    if (!pushes_)
      return y(kNoPush);
    pushes_->subscribe(c, r, y);
  }

  void ring(ConnId c, Request &r, const Reply &y) {
    const auto line = r.text("line"), name = r.text("name");
    if (!r.ok() || !line)
      return y({"bad-request", R"(ring needs {"ring":{"line":"the id in the ring link","name":"your name"}}.)"});
    if (Outcome o = duet::ring::check_name(name, true); !o.ok())
      return y(o);
    if (line->size() > 128)
      return y({"line-unknown", "No line has this ring link: it may have been replaced or removed."});
    ringing_.ring(c, *line, *name, address(c), y);
  }
  // accept, decline and cancel name the ring they mean.
  template <void (duet::ring::Ringing::*Fn)(ConnId, const std::string &, const Reply &)>
  void on_ring(ConnId c, Request &r, const Reply &y) {
    const auto id = r.text("ring");
    if (!r.ok() || !id)
      return y({"bad-request", R"(This message needs {"…":{"ring":"the ring's id"}}.)"});
    (ringing_.*Fn)(c, *id, y);
  }

  static const std::unordered_map<std::string_view, Handler> kHandlers;

  bool enabled_;
  duet::http::CurlLibrary curl_;
  duet::ring::Store store_;  // opened on first use: never with --cluster
  duet::ring::Attachments attached_;
  Backend backend_;
  std::unordered_map<ConnId, Queue> queues_;
  duet::ring::Metrics metrics_;
  duet::ring::Context ctx_;
  std::unique_ptr<duet::ring::Pushes> pushes_;
  duet::ring::Ringing ringing_;
  duet::ring::Lines lines_;
  duet::Timer prune_;
};

const std::unordered_map<std::string_view, Ring::Handler> Ring::kHandlers = {
    {"line-create", &Ring::create},
    {"line-attach", &Ring::attach},
    {"line-rename", &Ring::rename},
    {"line-new-link", &Ring::new_link},
    {"line-invite", &Ring::invite},
    {"line-join", &Ring::join},
    {"line-remove-device", &Ring::remove_device},
    {"line-push-key", &Ring::push_key},
    {"line-push", &Ring::push},
    {"ring", &Ring::ring},
    {"ring-cancel", &Ring::on_ring<&duet::ring::Ringing::cancel>},
    {"ring-accept", &Ring::on_ring<&duet::ring::Ringing::accept>},
    {"ring-decline", &Ring::on_ring<&duet::ring::Ringing::decline>},
};

}  // namespace

namespace duet::ring {

Metrics::Metrics(const duet::Host &host)
    : rings(host.metric("ring_rings_total", "Rings started (a caller rang a line).", DUET_METRIC_COUNTER)),
      accepted(host.metric("ring_accepted_total", "Rings accepted on a device.", DUET_METRIC_COUNTER)),
      declined(host.metric("ring_declined_total", "Rings declined on a device.", DUET_METRIC_COUNTER)),
      missed(host.metric("ring_missed_total", "Rings nobody answered within the ring time.", DUET_METRIC_COUNTER)),
      busy(
          host.metric("ring_busy_total", "Rings refused because the line rang or was in a call.", DUET_METRIC_COUNTER)),
      cancelled(host.metric("ring_cancelled_total", "Rings the caller ended before an answer.", DUET_METRIC_COUNTER)),
      limited_caller(
          host.metric("ring_limited_caller_total", "Rings refused by the per-address limit.", DUET_METRIC_COUNTER)),
      limited_line(host.metric("ring_limited_line_total", "Rings refused by the per-line limit.", DUET_METRIC_COUNTER)),
      limited_change(host.metric("ring_limited_change_total",
                                 "Renames, new links and invites refused by the per-line limit.", DUET_METRIC_COUNTER)),
      limited_full(host.metric("ring_limited_full_total", "Lines refused because the store holds --ring-max-lines.",
                               DUET_METRIC_COUNTER)),
      lines_created(host.metric("ring_lines_created_total", "Lines made.", DUET_METRIC_COUNTER)),
      devices_attached(
          host.metric("ring_devices_attached", "Devices with the page open, waiting for rings.", DUET_METRIC_GAUGE)) {}

Outcome check_name(const std::optional<std::string> &text, bool required) {
  if (!text)
    return required ? Outcome{"bad-request", "A name is needed (a string)."} : Outcome{};
  if (text->size() > kMaxNameBytes)
    return {"name-too-long", "Names are at most 64 bytes."};
  if (text->find_first_not_of(' ') == std::string::npos)
    return {"bad-request", "A name may not be empty."};
  for (const unsigned char c : *text)
    if (c < 0x20 || c == 0x7f)
      return {"bad-request", "A name may not hold control characters."};
  // Bidirectional overrides and isolates (U+202A-202E, U+2066-2069) would
  // let a caller's name show as another text on the ring screen.
  for (std::size_t i = 0; i + 2 < text->size(); i++) {
    const auto b1 = static_cast<unsigned char>((*text)[i + 1]), b2 = static_cast<unsigned char>((*text)[i + 2]);
    if (static_cast<unsigned char>((*text)[i]) == 0xe2 &&
        ((b1 == 0x80 && b2 >= 0xaa && b2 <= 0xae) || (b1 == 0x81 && b2 >= 0xa6 && b2 <= 0xa9)))
      return {"bad-request", "A name may not hold bidirectional control characters."};
  }
  return {};
}

}  // namespace duet::ring

const duet_plugin_command_t kVapidKey = duet::command(
    "vapid-key", "print the Web Push public key (made on first use), then exit", &duet::ring::vapid_key_command);
const duet_plugin_command_t *const kCommands[] = {&kVapidKey, nullptr};

DUET_PLUGIN_WITH_COMMANDS(ring, Ring, "ring", "1.1.0",
                          "Lines people ring through a link; every device of a line rings, closed ones by Web Push",
                          kOptions, kCommands)
