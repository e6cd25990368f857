// The keepalive plugin: answers the clients' JSON pings, pings every client at
// an interval (a JSON {"ping":1} for the tutorial client and a WebSocket ping
// frame for every client), and closes connections that have shown no sign of
// life for too long so their partners hear {"close":1} and their ids come
// free. See "Protocol" and "Keepalive" in README.md.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
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
    duet::option("timeout", "3 intervals",
     "how long a client may send no frame at all (text, ping or pong) before it is closed with 4408; seconds, or "
     "'N intervals'; at least one interval, at most 86400 seconds"),
    {},
};

// Each interval is split into this many ticks; a connection is visited on one
// of them, so a tick touches about a tenth of the connections.
constexpr std::size_t kSlots = 10;

constexpr double kMinIntervalSeconds = 0.05;
constexpr double kMaxIntervalSeconds = 3600;
constexpr double kMaxTimeoutSeconds = 86400;

// 4000-4999 are for applications (RFC 6455); 4408 echoes HTTP's 408 Request Timeout.
constexpr int kCloseNoSignOfLife = 4408;

// A plain decimal number ("30", "0.2"): no sign, exponent, hex, inf or nan,
// and no dependence on the C locale's decimal point.
bool parse_decimal(std::string_view text, double &out) {
  if (text.empty() || text.find_first_not_of("0123456789.") != std::string_view::npos)
    return false;
  const char *end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out, std::chars_format::fixed);
  return ec == std::errc() && ptr == end;
}

std::uint64_t to_ms(double seconds) { return static_cast<std::uint64_t>(std::llround(seconds * 1000.0)); }

struct Settings {
  std::uint64_t interval_ms;
  std::uint64_t timeout_ms;
};

// Reads and checks the options; a bad value throws std::invalid_argument,
// which makes duetd refuse to start with the usage-error exit code.
Settings settings_from(const duet::Host &host) {
  const std::string interval_text(host.config("interval").value_or("30"));
  double interval = 0;
  if (!parse_decimal(interval_text, interval) || interval < kMinIntervalSeconds || interval > kMaxIntervalSeconds)
    throw std::invalid_argument("interval must be a number of seconds between 0.05 and 3600, not '" + interval_text +
                                "'");

  const std::string timeout_text(host.config("timeout").value_or("3 intervals"));
  std::string_view number_text = timeout_text;
  bool in_intervals = false;
  for (std::string_view unit : {" intervals", " interval"})
    if (!in_intervals && number_text.size() > unit.size() &&
        number_text.substr(number_text.size() - unit.size()) == unit) {
      number_text.remove_suffix(unit.size());
      in_intervals = true;
    }
  double number = 0;
  if (!parse_decimal(number_text, number))
    throw std::invalid_argument("timeout must be a number of seconds or of intervals (like '90' or '3 intervals'), "
                                "not '" + timeout_text + "'");
  const double timeout = in_intervals ? number * interval : number;
  if (timeout < interval || timeout > kMaxTimeoutSeconds)
    throw std::invalid_argument("timeout must be at least one interval (" + interval_text +
                                " s) and at most 86400 seconds, not '" + timeout_text + "'");
  return {to_ms(interval), to_ms(timeout)};
}

// One open connection and its place on the wheel.
struct Peer : WheelNode {
  explicit Peer(duet::ConnId id) : conn(id) {}
  const duet::ConnId conn;
};

class Keepalive : public duet::Plugin {
 public:
  explicit Keepalive(const duet::Host &host) : Plugin(host), settings_(settings_from(host)), wheel_(kSlots) {
    pings_metric_ = host.metric("keepalive_pings_sent_total",
                                "Keepalive rounds sent: a JSON {\"ping\":1} plus a WebSocket ping frame each.",
                                DUET_METRIC_COUNTER);
    timeouts_metric_ = host.metric("keepalive_timeouts_total",
                                   "Connections closed because they showed no sign of life for the timeout.",
                                   DUET_METRIC_COUNTER);
    host.log(DUET_LOG_INFO, "pinging every " + std::to_string(settings_.interval_ms) +
                                " ms, closing connections silent for " + std::to_string(settings_.timeout_ms) + " ms");
    if (pings_metric_ < 0 || timeouts_metric_ < 0)
      host.log(DUET_LOG_WARN, "could not register the keepalive metrics; /metrics will lack them");
    // Started last: nothing after it may throw and leave a timer pointing at a
    // half-built plugin.
    const std::uint64_t tick_ms = std::max<std::uint64_t>(1, settings_.interval_ms / kSlots);
    timer_ = host.timer_start(tick_ms, tick_ms, &Keepalive::on_tick, this);
    if (timer_ < 0)
      throw std::runtime_error("could not start the keepalive timer: error " + std::to_string(timer_));
  }

  ~Keepalive() override {
    if (timer_ > 0)
      host().timer_stop(timer_);
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
  static void on_tick(void *self) noexcept {
    auto *plugin = static_cast<Keepalive *>(self);
    try {
      plugin->wheel_.advance([plugin](WheelNode &node) { plugin->visit(static_cast<Peer &>(node)); });
    } catch (const std::exception &e) {
      plugin->host().log(DUET_LOG_ERROR, std::string("tick failed: ") + e.what());
    } catch (...) {
      plugin->host().log(DUET_LOG_ERROR, "tick failed: unknown exception");
    }
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
    if (info.idle_ms >= settings_.timeout_ms) {
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
  std::int64_t timer_ = 0;
  std::int64_t pings_metric_ = 0;
  std::int64_t timeouts_metric_ = 0;
};

}  // namespace

DUET_PLUGIN(keepalive, Keepalive, "keepalive", "1.0.0",
            "Answers JSON pings, pings every client at an interval and closes connections that stop answering",
            kOptions)
