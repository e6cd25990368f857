// Rings in progress and the calls they became. A line rings at most once
// at a time and is busy from its ring until the call it became ends (the
// pairing plugin says so with pairing.unpaired) or never starts (nobody
// opens within kConnectWindow). Every device of the line attached now
// rings; the first to accept gets the call, the others stop.
#pragma once

#include <chrono>
#include <string>
#include <unordered_map>
#include <vector>

#include "context.hpp"
#include "limits.hpp"
#include "pushes.hpp"

namespace duet::ring {

struct RingSettings {
  std::chrono::milliseconds ring_time;
  std::uint32_t per_address;  // rings a caller's address may start per minute
  std::uint32_t per_line;     // rings a line may get per minute
};

class Ringing {
public:
  // pushes: how devices without an open page ring (null: they do not).
  Ringing(Context &ctx, const RingSettings &settings, Pushes *pushes)
      : ctx_(ctx), pushes_(pushes), ring_time_(settings.ring_time), per_address_(settings.per_address, 60000),
        per_line_(settings.per_line, 60000) {}

  // {"ring":{"line":ID,"name":CALLER}} from caller, whose address is address.
  Outcome ring(ConnId caller, const std::string &line_id, const std::string &name, const std::string &address);
  Outcome cancel(ConnId caller, const std::string &ring_id);
  Outcome accept(ConnId device, const std::string &ring_id);
  Outcome decline(ConnId device, const std::string &ring_id);

  // A device attached while its line rings: it rings too.
  void attached(ConnId device, LineKey line);
  // A device is removed from its line: if the line rings, it stops there
  // (ring-stop "removed"); the ring goes on on the others.
  void device_removed(ConnId device, LineKey line);
  // A connection is gone: a caller's ring stops.
  void closed(ConnId conn);
  // The line was removed (its last device went): its ring ends as declined.
  void line_gone(LineKey line);
  // What the pairing plugin says of the calls' ids.
  void paired(const std::string &a, const std::string &b);
  void unpaired(const std::string &a, const std::string &b);
  // Forget limit windows that are over (on a timer).
  void prune(std::int64_t now);

  // How long the two sides of an accepted ring have to open their call.
  static constexpr std::chrono::seconds kConnectWindow{60};

private:
  struct Ring {
    std::string id;
    LineKey line = 0;
    ConnId caller = 0;
    std::string caller_name;
    std::int64_t at_ms = 0;
    std::vector<std::string> pushed;  // devices rung by Web Push
    duet::Timer timer;
  };
  struct Call {
    std::string ids[2];  // the caller's and the device's pairing ids
    duet::Timer timer;   // the connect window, until paired
  };

  Ring *find(const std::string &ring_id);
  Ring *device_ring(ConnId device, const std::string &ring_id);
  void start(ConnId caller, const Line &line, const std::string &name);
  void ring_device(ConnId device, const Ring &ring);
  // Stops every device of the ring's line (but except), tells the caller
  // (when caller_reason) and forgets the ring. The device that answered
  // (answered, else except) gets no push about its own answer.
  void end(Ring &ring, const char *device_reason, const char *caller_reason, ConnId except = 0, ConnId answered = 0);
  void no_answer(const std::string &ring_id);
  void connect(Ring &ring, ConnId device);
  void end_call(LineKey line);

  Context &ctx_;
  Pushes *pushes_;
  std::chrono::milliseconds ring_time_;
  WindowLimit per_address_, per_line_;
  std::unordered_map<LineKey, Ring> rings_;            // by line
  std::unordered_map<std::string, LineKey> ring_ids_;  // ring id -> line
  std::unordered_map<ConnId, LineKey> callers_;        // a caller's one ring
  std::unordered_map<LineKey, Call> calls_;
  std::unordered_map<std::string, LineKey> call_ids_;  // pairing id -> line
};

}  // namespace duet::ring
