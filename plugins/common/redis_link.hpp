// One connection to Redis on duetd's own loop: hiredis's async API driven by
// the host's fd watches and timers (no libuv or hiredis type crosses the
// plugin ABI), connected again with back-off whenever it drops.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "duet/plugin.hpp"

struct redisAsyncContext;
struct redisReply;

namespace duet::cluster {

// Where Redis is: --cluster redis://[:PASSWORD@]HOST:PORT[/DB] or unix:///PATH.
struct RedisTarget {
  std::string host;  // empty for a unix socket
  int port = 6379;
  std::string unix_path;
  std::string password;
  int db = 0;
  std::string describe() const;  // for log lines, never with the password
};

// Parses a --cluster URL; throws OptionError with a sentence on a bad one.
RedisTarget parse_redis_url(std::string_view url);
// The target a plugin's cluster and cluster-password-file options name
// (pairing's and ring's, set together by --cluster).
RedisTarget redis_target(const duet::Options &options);

class RedisLink {
public:
  // reply is nullptr when the link failed before the answer came.
  using Reply = std::function<void(const redisReply *reply)>;
  struct Events {
    std::function<void()> up;    // connected, authenticated, database selected
    std::function<void()> down;  // was up, and is not any more
  };

  // host lives as long as the plugin, and so beyond the link.
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
  void drop(const char *why);
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
  bool was_up_ = false;
};

}  // namespace duet::cluster
