// The ring bus of a cluster: events over Redis pub/sub (one channel,
// duet:ring:events, every node subscribed: rings are rare, so every node
// hearing every event costs nothing worth a channel per line), busy marks
// as keys with a time to live, and which devices have a page open where.
// Keys beside redis_store.hpp's:
//   busy:K -> HOLDER   the ring (then its call) that holds line K; SET NX
//                      PX, so a dead owner's mark lapses
//   open:K zset        devices with a page open on some node, scored by
//                      when that node's word lapses (refreshed every 10 s)
#pragma once

#include <memory>
#include <string>

#include "bus.hpp"
#include "common/redis_link.hpp"

namespace duet::ring {

class RedisBus : public RingBus {
public:
  // commands: the link the store uses too; the bus adds its own link for
  // the subscription (a subscribed link can do nothing else).
  RedisBus(const duet::Host &host, duet::cluster::RedisLink &commands, const duet::cluster::RedisTarget &target,
           const Attachments &attached, std::string node);
  ~RedisBus() override { *alive_ = false; }

  const std::string &node() const override { return node_; }
  void publish(const std::string &json) override;
  void claim(LineKey line, const std::string &holder, std::chrono::milliseconds ttl, Then<bool> then) override;
  void extend(LineKey line, const std::string &holder, std::chrono::milliseconds ttl) override;
  void release(LineKey line, const std::string &holder) override;
  void open_devices(LineKey line, Then<std::vector<std::string>> then) override;
  void device_opened(LineKey line, const std::string &device) override;
  void device_closed(LineKey line, const std::string &device) override;

  // How long a node's word that a page is open holds, and how often it is said again.
  static constexpr std::chrono::seconds kOpenLife{30}, kOpenRefresh{10};

private:
  void refresh_open();
  std::string key(const char *kind, LineKey line) const;

  const duet::Host &host_;
  duet::cluster::RedisLink &commands_;
  duet::cluster::RedisLink events_;
  const Attachments &attached_;
  std::string node_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  duet::Timer refresh_;
};

}  // namespace duet::ring
