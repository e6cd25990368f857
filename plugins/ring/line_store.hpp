// Where lines live, as the handlers see it: in SQLite on one node
// (SqliteLines, over store.hpp), in Redis with --cluster (RedisLines), the
// same data for every node. Each call answers through its callback: at
// once from SQLite, from Redis's reply on duetd's loop. An answer that
// failed carries the error the sender gets; the store has logged why.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "outcome.hpp"
#include "store.hpp"

namespace duet::ring {

template <class T> struct Answer {
  Outcome failure;  // ok() when value holds the answer
  T value{};
  bool ok() const { return failure.ok(); }
};
template <class T> using Then = std::function<void(Answer<T>)>;
using Done = Then<bool>;

// A line as its devices see it.
struct LineState {
  Line line;
  std::vector<Device> devices;
  std::vector<Missed> missed;  // newest first
};

enum class JoinResult { joined, code_invalid, line_full };
struct Joined {
  JoinResult result = JoinResult::code_invalid;
  LineKey line = 0;
};

struct Removal {
  bool removed = false;    // the device was on the line
  bool line_gone = false;  // it was the last: the line went with it
};

class LineStore {
public:
  virtual ~LineStore() = default;

  // A new line with its first device; nullopt when max_lines lines exist.
  virtual void create_line(const std::string &id, const std::string &name, const Device &device,
                           const std::string &secret_hash, std::int64_t max_lines, Then<std::optional<Line>> then) = 0;
  virtual void device(const std::string &device_id, Then<std::optional<DeviceRecord>> then) = 0;
  virtual void line(LineKey key, Then<std::optional<Line>> then) = 0;
  virtual void line_by_id(const std::string &id, Then<std::optional<Line>> then) = 0;
  // The line with its devices and its latest missed calls.
  virtual void state(LineKey key, Then<std::optional<LineState>> then) = 0;
  virtual void rename(LineKey key, const std::string &name, Done then) = 0;
  // The old id rings nobody from now on.
  virtual void relink(LineKey key, const std::string &new_id, Done then) = 0;
  virtual void add_invite(LineKey key, const std::string &code_hash, std::int64_t life_ms, Done then) = 0;
  // Uses up an unexpired invite and adds the device, in one step; a line
  // with max_devices devices leaves the invite unused.
  virtual void join(const std::string &code_hash, const Device &device, const std::string &secret_hash,
                    std::size_t max_devices, Then<Joined> then) = 0;
  virtual void remove_device(LineKey key, const std::string &device_id, Then<Removal> then) = 0;
  virtual void add_missed(LineKey key, const std::string &caller, std::int64_t at_ms, Done then) = 0;
  virtual void set_subscription(const Subscription &sub, Done then) = 0;
  // With an endpoint, only while it is still that one (the device may
  // have subscribed anew meanwhile).
  virtual void remove_subscription(const std::string &device, const std::string &endpoint, Done then) = 0;
  virtual void subscriptions(LineKey key, Then<std::vector<Subscription>> then) = 0;

  static constexpr int kMissedKept = 20;
};

// The embedded store: SQLite in the state folder, answering at once.
class SqliteLines : public LineStore {
public:
  explicit SqliteLines(Store &store, std::function<void(const std::string &)> log_failure)
      : store_(store), log_failure_(std::move(log_failure)) {}

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
  // Runs work; its value, or the store's failure, goes to then.
  template <class T, class Work> void answer(const Then<T> &then, Work work);

  Store &store_;
  std::function<void(const std::string &)> log_failure_;
};

}  // namespace duet::ring
