// What Redis Sentinel says about where the master is (--cluster
// redis-sentinel://...): a link to every sentinel that asks
// SENTINEL get-master-addr-by-name, and a second one subscribed to
// +switch-master, all on duetd's loop (RedisLink, no blocking call).
// RedisLink asks master() before it connects and listens for moves.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "redis_link.hpp"

namespace duet::cluster {

class Sentinels {
public:
  // target.via_sentinels(); host lives as long as the plugin.
  Sentinels(const duet::Host &host, const RedisTarget &target);
  ~Sentinels();
  Sentinels(const Sentinels &) = delete;
  Sentinels &operator=(const Sentinels &) = delete;

  // The master most sentinels name (the latest answer among equals);
  // nullptr until one has answered.
  const RedisEndpoint *master() const { return master_ ? &*master_ : nullptr; }
  // Asks every sentinel that is up again: a link found a replica, an
  // answer said READONLY or MASTERDOWN, or the master stopped answering.
  void refresh();
  // on_change runs when master() changes; the id is for unlisten.
  std::uint64_t listen(std::function<void()> on_change);
  void unlisten(std::uint64_t id);

private:
  struct Sentinel {
    std::unique_ptr<RedisLink> query, announcements;
    std::optional<RedisEndpoint> names;  // what this sentinel said last
    std::uint64_t said_at = 0;           // when, in answers counted
  };
  void ask(Sentinel &s);
  void heard(Sentinel &s, RedisEndpoint master, const char *how);
  void choose(const char *how);

  const duet::Host &host_;
  std::string master_name_, describe_;
  std::vector<std::unique_ptr<Sentinel>> sentinels_;
  std::optional<RedisEndpoint> master_;
  std::uint64_t answers_ = 0, next_listener_ = 1;
  std::map<std::uint64_t, std::function<void()>> listeners_;
};

// The master the sentinels name, asked with blocking calls (2 s timeout per
// sentinel): for start-up steps that run before the loop does; nullopt and
// why when none answered.
std::optional<RedisEndpoint> ask_sentinels_now(const RedisTarget &target, std::string &why);

}  // namespace duet::cluster
