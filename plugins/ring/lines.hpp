// Lines and their devices: making a line, attaching a device with its
// secret, renaming, replacing the ring link, "add this device" invites,
// joining with one, and removing a device. No passwords: a device proves
// itself with the secret it was given when it joined.
#pragma once

#include <functional>
#include <string>

#include <rapidjson/document.h>

#include "context.hpp"
#include "limits.hpp"
#include "ringing.hpp"
#include "wire.hpp"

namespace duet::ring {

class Lines {
public:
  // creates_per_hour: lines one address may make per hour (each is a row
  // kept until removed: one address may not fill the store); max_lines:
  // lines the store may hold at all (many addresses may not fill it either).
  Lines(Context &ctx, Ringing &ringing, std::uint32_t creates_per_hour, std::int64_t max_lines)
      : ctx_(ctx), ringing_(ringing), max_lines_(max_lines), joins_(kJoinsPerMinute, 60000),
        creates_(creates_per_hour, 3600000), changes_(kChangesPerHour, 3600000) {}

  void create(ConnId conn, Request &req, const std::string &address, const Reply &reply);
  void attach(ConnId conn, Request &req, const Reply &reply);
  void rename(ConnId conn, Request &req, const Reply &reply);
  void new_link(ConnId conn, Request &req, const Reply &reply);
  void invite(ConnId conn, Request &req, const Reply &reply);
  void join(ConnId conn, Request &req, const std::string &address, const Reply &reply);
  void remove_device(ConnId conn, Request &req, const Reply &reply);
  // The connection closed: it is no device any more.
  void closed(ConnId conn);
  // An event from the bus; false when it is not a line event.
  bool on_event(const std::string &kind, const rapidjson::Document &event);

  void prune(std::int64_t now) {
    joins_.prune(now);
    creates_.prune(now);
    changes_.prune(now);
  }

  static constexpr std::size_t kMaxDevices = 20;
  static constexpr std::int64_t kInviteLifeMs = 10 * 60 * 1000;
  // Invite codes carry 44 bits: a minute's guesses per address stay hopeless.
  static constexpr std::uint32_t kJoinsPerMinute = 20;
  // Renames, new links and invites of one line: a device (or a stolen
  // secret) may not churn the store, or the line's other devices.
  static constexpr std::uint32_t kChangesPerHour = 30;

private:
  // A new device's id and secret (the store keeps the secret's hash).
  struct NewDevice {
    Device device;
    std::string secret;
  };
  static NewDevice new_device(const std::string &label);
  void attach_as(ConnId conn, LineKey line, const NewDevice &made);
  void attach_conn(ConnId conn, LineKey line, const std::string &device);
  // {"line":{...}} to every device of the line, on every node.
  void tell_line(LineKey line);
  void on_line_changed(LineKey line);
  void on_device_removed(LineKey line, const std::string &device);
  static std::string state(const LineState &line, const std::string &device);
  const Attachments::Entry *attached(ConnId conn, Outcome &out) const;
  // Runs apply on the line conn is attached to; when it succeeds,
  // every device of the line hears the line's new state.
  void change(ConnId conn, const Reply &reply, const std::function<void(LineKey, Done)> &apply);

  // ok() when the line may change once more this hour.
  Outcome count_change(LineKey line);

  Context &ctx_;
  Ringing &ringing_;
  std::int64_t max_lines_;
  WindowLimit joins_;    // join attempts per address
  WindowLimit creates_;  // lines made per address
  WindowLimit changes_;  // renames, new links and invites per line
};

}  // namespace duet::ring
