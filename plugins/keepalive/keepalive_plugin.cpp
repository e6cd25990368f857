// The keepalive plugin: answers the clients' JSON pings, pings every client at
// an interval (a JSON {"ping":1} for the tutorial client and a WebSocket ping
// frame for every client), and closes connections that have shown no sign of
// life for too long so their partners hear {"close":1} and their ids come
// free. See "Protocol" and "Keepalive" in README.md.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "duet/plugin.hpp"
#include "timing_wheel.hpp"

namespace {

using duet::keepalive::TimingWheel;
using duet::keepalive::WheelNode;

const duet_plugin_option_t kOptions[] = {
    duet::option("interval", "30",
                 "seconds between pings to each client (a JSON {\"ping\":1} and a WebSocket ping frame); 0.05 to 3600, "
                 "fractions allowed"),
    duet::option(
        "timeout", "3 intervals",
        "how long a client may send no frame at all (text, ping or pong) before it is closed with 4408; seconds, or "
        "'N intervals'; at least one interval, at most 86400 seconds"),
    {},
};

// Each interval is split into this many ticks; a connection is visited on one
// of them, so a tick touches about a tenth of the connections.
constexpr std::size_t kSlots = 10;

constexpr std::chrono::milliseconds kMinInterval(50);
constexpr std::chrono::milliseconds kMaxInterval = std::chrono::hours(1);
constexpr std::chrono::milliseconds kMaxTimeout = std::chrono::hours(24);

// 4000-4999 are for applications (RFC 6455); 4408 echoes HTTP's 408 Request Timeout.
constexpr int kCloseNoSignOfLife = 4408;

struct Settings {
  std::chrono::milliseconds interval;
  std::chrono::milliseconds timeout;
};

// "N intervals" or "1 interval": the number, else nullopt.
std::optional<double> intervals_in(std::string_view text) {
  for (std::string_view unit : {" intervals", " interval"})
    if (text.size() > unit.size() && text.substr(text.size() - unit.size()) == unit)
      return duet::parse_decimal(text.substr(0, text.size() - unit.size()));
  return std::nullopt;
}

// Reads and checks the options; a bad value throws duet::OptionError, which
// makes duetd refuse to start with the usage-error exit code.
Settings settings_from(const duet::Host &host) {
  const duet::Options options = host.options();
  const auto interval = options.duration("interval", kMinInterval, kMaxInterval);
  const std::string text = options.text("timeout");
  std::optional<std::chrono::milliseconds> timeout = duet::parse_duration(text);
  if (const auto n = intervals_in(text))
    timeout = std::chrono::milliseconds(std::llround(*n * static_cast<double>(interval.count())));
  if (!timeout)
    options.fail("timeout", text, "a number of seconds or of intervals (like 90, 2m or 3 intervals)");
  if (*timeout < interval || *timeout > kMaxTimeout)
    options.fail("timeout", text,
                 "at least one interval (" + std::to_string(interval.count()) + " ms) and at most 86400 seconds");
  return {interval, *timeout};
}

// One open connection and its place on the wheel.
struct Peer : WheelNode {
  explicit Peer(duet::ConnId id) : conn(id) {}
  const duet::ConnId conn;
};

class Keepalive : public duet::Plugin {
public:
  static constexpr duet_stage_t kStage = DUET_STAGE_TRANSPORT;
  explicit Keepalive(const duet::Host &host) : Plugin(host), settings_(settings_from(host)), wheel_(kSlots) {
    pings_metric_ = host.metric("keepalive_pings_sent_total",
                                "Keepalive rounds sent: a JSON {\"ping\":1} plus a WebSocket ping frame each.",
                                DUET_METRIC_COUNTER);
    timeouts_metric_ =
        host.metric("keepalive_timeouts_total",
                    "Connections closed because they showed no sign of life for the timeout.", DUET_METRIC_COUNTER);
    host.log(DUET_LOG_INFO, "pinging every " + std::to_string(settings_.interval.count()) +
                                " ms, closing connections silent for " + std::to_string(settings_.timeout.count()) +
                                " ms");
    if (pings_metric_ < 0 || timeouts_metric_ < 0)
      host.log(DUET_LOG_WARN, "could not register the keepalive metrics; /metrics will lack them");
    // Started last: nothing after it may throw and leave a timer pointing at a
    // half-built plugin.
    const std::chrono::milliseconds tick(std::max<std::int64_t>(1, settings_.interval.count() / std::int64_t{kSlots}));
    timer_ = host.start_timer(tick, tick, [this] { tick_once(); });
  }

  void on_open(duet::ConnId conn) override {
    auto [it, added] = peers_.try_emplace(conn, nullptr);
    if (!added)
      return;
    it->second = std::make_unique<Peer>(conn);
    wheel_.insert(*it->second);
  }

  duet_verdict_t on_message(duet::ConnId conn, const duet::Message &msg, duet_reject_t &) override {
    const std::string_view type = msg.type();
    if (type == "ping") {
      host().send(conn, R"({"pong":1})");
      return DUET_HANDLED;
    }
    // A client's answer to our ping: the frame itself already reset its idle time.
    if (type == "pong")
      return DUET_HANDLED;
    return DUET_PASS;
  }

  void on_close(duet::ConnId conn, duet_close_reason_t) override { peers_.erase(conn); }

private:
  void tick_once() {
    wheel_.advance([this](WheelNode &node) { visit(static_cast<Peer &>(node)); });
  }

  // Called once per interval for each connection.
  void visit(Peer &peer) {
    // A close or send may end the connection at once and free peer (through
    // on_close), so peer is not touched after either.
    const duet::ConnId conn = peer.conn;
    duet_conn_info_t info{};
    if (!host().conn_info(conn, info)) {
      // Gone: on_close frees peer, and the connection needs no more pings.
      wheel_.remove(peer);
      return;
    }
    if (info.idle_ms >= static_cast<std::uint64_t>(settings_.timeout.count())) {
      wheel_.remove(peer);
      // A connection that another part of duetd is already closing is not ours to count.
      if (host().close(conn, kCloseNoSignOfLife, "no sign of life", DUET_CLOSE_TIMEOUT) != 0)
        return;
      host().metric_add(timeouts_metric_, 1);
      host().log(DUET_LOG_INFO, "connection " + std::to_string(conn) + " (" + info.remote_addr + ") sent nothing for " +
                                    std::to_string(info.idle_ms) + " ms: closed it");
      return;
    }
    if (host().send(conn, R"({"ping":1})") == 0) {
      host().ping(conn);
      host().metric_add(pings_metric_, 1);
    }
  }

  const Settings settings_;
  // Declared before peers_ so every Peer leaves a wheel that still exists.
  TimingWheel wheel_;
  std::unordered_map<duet::ConnId, std::unique_ptr<Peer>> peers_;
  duet::Timer timer_;  // declared after what its callback touches, so it stops first
  std::int64_t pings_metric_ = 0;
  std::int64_t timeouts_metric_ = 0;
};

}  // namespace

DUET_PLUGIN(keepalive, Keepalive, "keepalive", "1.0.0",
            "Answers JSON pings, pings every client at an interval and closes connections that stop answering",
            kOptions)
