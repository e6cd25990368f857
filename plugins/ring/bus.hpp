// How ring events reach the nodes that need them. A ring belongs to the
// caller's node (its owner): it alone decides the ring's outcome, so two
// devices answering at once cannot both win. Events go to every node
// (this one too): a ring and its end to the nodes with devices of the
// line, answers to the owner, line changes to every device. LocalBus is
// one process; RedisBus (redis_bus.hpp) is a cluster over Redis pub/sub.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "attachments.hpp"
#include "line_store.hpp"

namespace duet::ring {

class RingBus {
public:
  using Listener = std::function<void(std::string_view json)>;
  virtual ~RingBus() = default;

  // This node's name in events ("" for one process).
  virtual const std::string &node() const = 0;
  void listen(Listener listener) { listener_ = std::move(listener); }
  // Every node's listener gets json, this node's too (at once or later).
  virtual void publish(const std::string &json) = 0;

  // Marks line busy for holder (a ring, then its call) for ttl: true when
  // nobody else held it. A dead owner's mark lapses with its ttl.
  virtual void claim(LineKey line, const std::string &holder, std::chrono::milliseconds ttl, Then<bool> then) = 0;
  // ttl more, while holder still holds it.
  virtual void extend(LineKey line, const std::string &holder, std::chrono::milliseconds ttl) = 0;
  virtual void release(LineKey line, const std::string &holder) = 0;

  // Devices of line with an open page on any node.
  virtual void open_devices(LineKey line, Then<std::vector<std::string>> then) = 0;
  // A device's page opened (attached here) or closed.
  virtual void device_opened(LineKey, const std::string &) {}
  virtual void device_closed(LineKey, const std::string &) {}

protected:
  void deliver(std::string_view json) {
    if (listener_)
      listener_(json);
  }

private:
  Listener listener_;
};

// One process: events are delivered at once, marks live in memory.
class LocalBus : public RingBus {
public:
  explicit LocalBus(const Attachments &attached) : attached_(attached) {}

  const std::string &node() const override { return node_; }
  void publish(const std::string &json) override { deliver(json); }
  void claim(LineKey line, const std::string &holder, std::chrono::milliseconds, Then<bool> then) override {
    const bool free = busy_.emplace(line, holder).second;
    then({{}, free});
  }
  void extend(LineKey, const std::string &, std::chrono::milliseconds) override {}
  void release(LineKey line, const std::string &holder) override {
    auto it = busy_.find(line);
    if (it != busy_.end() && it->second == holder)
      busy_.erase(it);
  }
  void open_devices(LineKey line, Then<std::vector<std::string>> then) override {
    std::vector<std::string> open;
    for (ConnId c : attached_.on_line(line))
      if (const Attachments::Entry *e = attached_.of(c))
        open.push_back(e->device);
    then({{}, std::move(open)});
  }

private:
  const Attachments &attached_;
  const std::string node_;
  std::unordered_map<LineKey, std::string> busy_;
};

}  // namespace duet::ring
