// This node in the cluster: its number, its three links to Redis (one for
// transactions, one for commands, one subscribed to its channel), whether
// they are all up (healthy: /healthz and cluster_redis_up say so), and its
// heartbeat — the node key refreshed every schema::kHeartbeat, and the
// question which other nodes still live.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/redis_link.hpp"
#include "duet/plugin.hpp"

namespace duet::cluster {

struct Settings {
  RedisTarget target;
  std::string node_name;  // empty: duetd's node id (--node-id, else host name and port)
};

class Membership {
public:
  struct Events {
    std::function<void(bool up)> changed;         // every link up, or not any more
    std::function<void()> beat;                   // a heartbeat while up
    std::function<void(std::string_view)> frame;  // a frame on this node's channel
  };
  struct Meters {
    std::int64_t reconnects, rtt, up;
  };

  // host lives as long as the plugin (plugin.hpp's detail::Instance).
  Membership(const duet::Host &host, Settings settings, Events events, Meters meters);
  Membership(const Membership &) = delete;
  Membership &operator=(const Membership &) = delete;

  void start();
  // The links go: their pending replies run now, with nullptr, and change nothing.
  void stop();

  std::uint32_t node() const { return node_; }
  bool healthy() const { return healthy_; }
  RedisLink &transactions() { return *txn_link_; }
  RedisLink &commands() { return *cmd_link_; }
  // The command that says this node lives, for a transaction to carry.
  std::vector<std::string> alive_command() const;
  // For kNodeTtl after Redis came back (a restart, a failover: node keys
  // may have expired meanwhile, and other nodes may not have rejoined yet),
  // a missing node key does not mean a dead node.
  bool settling() const { return std::chrono::steady_clock::now() < settle_until_; }
  // dead(n) for each of nodes whose key is gone (on the command link); none while settling.
  void find_dead(const std::set<std::uint32_t> &nodes, std::function<void(std::uint32_t)> dead);

private:
  void links_changed();
  void joined();
  void beat();
  void report_links();

  const duet::Host &host_;
  Settings settings_;
  Events events_;
  Meters meters_;
  std::uint32_t node_ = 0;
  std::unique_ptr<RedisLink> txn_link_, cmd_link_, sub_link_;
  bool healthy_ = false;
  bool stopping_ = false;
  bool joined_before_ = false;
  std::chrono::steady_clock::time_point settle_until_{};
  std::uint64_t reported_reconnects_ = 0;
  duet::Timer heartbeat_;
};

}  // namespace duet::cluster
