// Lines in Redis, for a cluster (--cluster): every node reads and writes
// the same keys, so a line made on one node attaches, rings and is
// changed on any other, and outlives any node. Each change is one Lua
// script: atomic across nodes (an invite is used once; the last device's
// removal takes its line along). The keys, all under duet:ring: —
//   next, count             the last line key; how many lines exist
//   line:K {id,name}        a line;  lineid:ID -> K  its ring link's id
//   devs:K zset             its devices (score: when they joined)
//   dev:D {line,hash,label} a device, with its secret's SHA-256
//   invite:H -> K           an "add this device" code's hash (expires)
//   missed:K list           its latest missed calls (JSON), newest first
//   sub:D {endpoint,p256dh,auth}  a device's push subscription
//   vapid-key               the cluster's VAPID private key (redis_vapid.hpp)
// (bus.hpp's RedisBus adds busy:K and open:K.)
#pragma once

#include <memory>
#include <string>

#include "common/redis_link.hpp"
#include "line_store.hpp"

namespace duet::ring {

inline constexpr const char *kRedisPrefix = "duet:ring:";

// Hands a reply's answer on from a hiredis callback: what then throws is
// logged, never thrown through hiredis's C frames.
template <class T> void hand_on(const duet::Host &host, const Then<T> &then, Answer<T> a) {
  try {
    then(std::move(a));
  } catch (const std::exception &e) {
    host.log(DUET_LOG_ERROR, std::string("ring: ") + e.what());
  }
}

class RedisLines : public LineStore {
public:
  RedisLines(const duet::Host &host, duet::cluster::RedisLink &link) : host_(host), link_(link) {}
  ~RedisLines() override { *alive_ = false; }  // replies still to come find nobody

  void create_line(const std::string &id, const std::string &name, const Device &device, const std::string &secret_hash,
                   std::int64_t max_lines, Then<std::optional<Line>> then) override;
  void device(const std::string &device_id, Then<std::optional<DeviceRecord>> then) override;
  void line(LineKey key, Then<std::optional<Line>> then) override;
  void line_by_id(const std::string &id, Then<std::optional<Line>> then) override;
  void state(LineKey key, Then<std::optional<LineState>> then) override;
  void rename(LineKey key, const std::string &name, Done then) override;
  void relink(LineKey key, const std::string &new_id, Done then) override;
  void add_invite(LineKey key, const std::string &code_hash, std::int64_t life_ms, Done then) override;
  void join(const std::string &code_hash, const Device &device, const std::string &secret_hash, std::size_t max_devices,
            Then<Joined> then) override;
  void remove_device(LineKey key, const std::string &device_id, Then<Removal> then) override;
  void add_missed(LineKey key, const std::string &caller, std::int64_t at_ms, Done then) override;
  void set_subscription(const Subscription &sub, Done then) override;
  void remove_subscription(const std::string &device, const std::string &endpoint, Done then) override;
  void subscriptions(LineKey key, Then<std::vector<Subscription>> then) override;

private:
  // Runs script with args after the prefix; read turns the reply into a
  // T (nullopt: a reply of the wrong shape, logged as a failure).
  template <class T, class Read> void eval(const char *script, std::vector<std::string> args, Then<T> then, Read read);

  const duet::Host &host_;
  duet::cluster::RedisLink &link_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace duet::ring
