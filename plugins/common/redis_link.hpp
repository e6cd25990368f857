// One connection to Redis on duetd's own loop: hiredis's async API driven by
// the host's fd watches and timers (no libuv or hiredis type crosses the
// plugin ABI), connected again with back-off whenever it drops.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "duet/plugin.hpp"

struct redisAsyncContext;
struct redisReply;

namespace duet::cluster {

class Sentinels;

struct RedisEndpoint {
  std::string host;
  int port = 6379;
  bool operator==(const RedisEndpoint &o) const { return host == o.host && port == o.port; }
  bool operator!=(const RedisEndpoint &o) const { return !(*this == o); }
  std::string describe() const;  // HOST:PORT, [V6]:PORT
};

// Where Redis is: --cluster redis://[:PASSWORD@]HOST:PORT[/DB], unix:///PATH
// or redis-sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER[/DB].
struct RedisTarget {
  std::string host;  // empty for a unix socket, and with sentinels
  int port = 6379;
  std::string unix_path;
  std::string password;
  int db = 0;
  // redis-sentinel://: the master is whichever these sentinels name now.
  std::vector<RedisEndpoint> sentinels;
  std::string master_name;
  std::string sentinel_password;  // --cluster-sentinel-password-file
  // What the sentinels say, shared by every link made with a copy of this
  // target (watch_sentinels); a link makes its own when none is set.
  std::shared_ptr<Sentinels> watch;

  bool via_sentinels() const { return !sentinels.empty(); }
  std::string describe() const;  // for log lines, never with the password
};

// Parses a --cluster URL; throws OptionError with a sentence on a bad one.
RedisTarget parse_redis_url(std::string_view url);
// The target a plugin's cluster, cluster-password-file and
// cluster-sentinel-password-file options name (pairing's and ring's, set
// together by --cluster and its companions).
RedisTarget redis_target(const duet::Options &options);
// Starts asking target's sentinels (when it has any), for every link that
// copies target after this.
void watch_sentinels(const duet::Host &host, RedisTarget &target);

class RedisLink {
public:
  // reply is nullptr when the link failed before the answer came.
  using Reply = std::function<void(const redisReply *reply)>;
  struct Events {
    std::function<void()> up;    // connected, authenticated, database selected
    std::function<void()> down;  // was up, and is not any more
  };

  // host lives as long as the plugin, and so beyond the link. With a
  // redis-sentinel:// target the link connects to the master the sentinels
  // name, checks it with ROLE, and finds it again when it moves (the
  // sentinels announce +switch-master; a READONLY or MASTERDOWN answer, a
  // replica's ROLE or a lost connection make it ask again).
  RedisLink(const duet::Host &host, RedisTarget target, std::string name, Events events);
  ~RedisLink();
  RedisLink(const RedisLink &) = delete;
  RedisLink &operator=(const RedisLink &) = delete;

  void start() { connect(); }
  bool up() const { return ready_; }
  // Queues a command; false (and reply never runs) when the link is down.
  bool command(const std::vector<std::string_view> &args, Reply reply);
  // verb followed by args (MGET key key ...).
  bool command(std::string_view verb, const std::vector<std::string> &args, Reply reply);
  // Puts the link in subscribe mode once up: on_message(payload) per message.
  void subscribe(std::string channel, std::function<void(std::string_view)> on_message);
  // Round trip of the last PING, in microseconds (0 before the first).
  std::uint64_t rtt_us() const { return rtt_us_; }
  std::uint64_t reconnects() const { return reconnects_; }

private:
  void connect();
  void set_up();
  void master_moved();
  void refused(const redisReply *reply);
  std::string where() const;  // the address connected to, for log lines
  void drop(const char *why);
  void failed_to_connect(const char *why);
  void schedule_reconnect();
  void setup_done();
  void watchdog();
  void want(std::uint32_t what, bool on);  // hiredis's add/del read/write hooks
  bool send(const std::vector<std::string_view> &args, Reply *owned, void (*fn)(redisAsyncContext *, void *, void *));

  static void on_ready(void *self, std::uint32_t ready);
  static void on_connect(const redisAsyncContext *ac, int status);
  static void on_disconnect(const redisAsyncContext *ac, int status);
  static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);
  static void on_message(redisAsyncContext *ac, void *reply, void *privdata);

  const duet::Host &host_;  // lives as long as the plugin (plugin.hpp's detail::Instance)
  RedisTarget target_;
  std::string name_;
  Events events_;
  redisAsyncContext *ac_ = nullptr;
  RedisEndpoint at_;  // with sentinels: the master this connection went to
  std::uint64_t listening_ = 0;
  bool told_no_master_ = false, told_failing_ = false;
  std::int64_t watch_ = 0;
  std::uint32_t wanted_ = 0;  // DUET_FD_* bits hiredis asked for
  bool ready_ = false, subscribed_ = false;
  std::string channel_;
  std::function<void(std::string_view)> on_message_;
  duet::Timer retry_, tick_;
  std::chrono::milliseconds backoff_{100};
  std::chrono::steady_clock::time_point connect_started_, ping_sent_;
  bool ping_out_ = false;
  std::uint64_t rtt_us_ = 0, reconnects_ = 0;
  std::size_t awaiting_ = 0;  // commands sent whose answer has not come
  bool was_up_ = false;
};

}  // namespace duet::cluster
