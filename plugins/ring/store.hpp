// The ring plugin's lasting state in SQLite: lines, their devices (with the
// hash of each device's secret, never the secret), "add this device"
// invites, missed calls and Web Push subscriptions. One connection, on duetd's loop thread: the
// one writer. WAL mode; the schema carries a version (PRAGMA user_version)
// and upgrades itself through the migrations in store.cpp. Opened on first
// use, so a duetd nobody makes lines on never creates the file.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

struct sqlite3;

namespace duet::ring {

// The database failed (opening, a full disk, a corrupt file).
class StoreError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

using LineKey = std::int64_t;  // a line's own key: stays when its link is replaced

struct Line {
  LineKey key = 0;
  std::string id;  // the public id in the ring link
  std::string name;
};

struct Device {
  std::string id;
  std::string label;
};

struct Missed {
  std::string caller;
  std::int64_t at_ms = 0;  // Unix time
};

// A device's Web Push subscription: where to POST, and its keys (raw bytes).
struct Subscription {
  std::string device;
  std::string endpoint;
  std::string p256dh;  // the browser's P-256 public key, 65 bytes
  std::string auth;    // 16 bytes
};

// Where a device's secret hash is kept, to be checked in constant time.
struct DeviceRecord {
  LineKey line = 0;
  std::string secret_hash;
};

class Store {
public:
  explicit Store(std::string path) : path_(std::move(path)) {}
  ~Store();
  Store(const Store &) = delete;
  Store &operator=(const Store &) = delete;

  const std::string &path() const { return path_; }

  // A new line with its first device, in one transaction.
  Line create_line(const std::string &id, const std::string &name, const Device &device, const std::string &secret_hash,
                   std::int64_t now_ms);
  void add_device(LineKey line, const Device &device, const std::string &secret_hash, std::int64_t now_ms);
  std::optional<DeviceRecord> device(const std::string &device_id);
  // Removes a device; a line left without devices is removed with it.
  // Returns whether the device was on the line.
  bool remove_device(LineKey line, const std::string &device_id);
  std::vector<Device> devices(LineKey line);

  std::optional<Line> line(LineKey key);
  std::int64_t line_count();
  std::optional<Line> line_by_id(const std::string &id);
  void rename(LineKey line, const std::string &name);
  void relink(LineKey line, const std::string &new_id);

  void add_invite(LineKey line, const std::string &code_hash, std::int64_t now_ms, std::int64_t expires_ms);
  // The line an unexpired invite adds to, the invite left as it is.
  std::optional<LineKey> invite_line(const std::string &code_hash, std::int64_t now_ms);
  // The line an unexpired invite adds to; the invite is used up.
  std::optional<LineKey> take_invite(const std::string &code_hash, std::int64_t now_ms);

  void add_missed(LineKey line, const std::string &caller, std::int64_t at_ms);
  // The latest missed calls, newest first.
  std::vector<Missed> missed(LineKey line, int limit);

  // A device's subscription, replacing the one it had.
  void set_subscription(const Subscription &sub, std::int64_t now_ms);
  // Removes device's subscription; with an endpoint, only while it is still
  // that one (the device may have subscribed anew meanwhile).
  bool remove_subscription(const std::string &device, const std::string &endpoint = {});
  std::vector<Subscription> subscriptions(LineKey line);

private:
  sqlite3 *db();
  void migrate();
  void exec(const char *sql);

  std::string path_;
  sqlite3 *db_ = nullptr;
};

}  // namespace duet::ring
