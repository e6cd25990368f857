// Rings in progress and the calls they became. A line rings at most once
// at a time and is busy from its ring until the call it became ends (the
// pairing plugin says so with pairing.unpaired) or never starts (nobody
// opens within kConnectWindow). Every device of the line with an open page
// rings, on whichever node it is; the first to accept gets the call, the
// others stop.
//
// A ring belongs to the caller's node (bus.hpp): it holds the line's busy
// mark, the ring timer, the pushes, and decides the outcome. Each node
// keeps the rings its own devices show (Shown), and ends them by itself
// when the owner goes silent past the ring time.
#pragma once

#include <chrono>
#include <string>
#include <unordered_map>
#include <vector>

#include <rapidjson/document.h>

#include "bus.hpp"
#include "context.hpp"
#include "limits.hpp"
#include "pushes.hpp"

namespace duet::ring {

struct RingSettings {
  std::chrono::milliseconds ring_time;
  std::uint32_t per_address;  // rings a caller's address may start per minute
  std::uint32_t per_line;     // rings a line may get per minute
};

// Who answered a ring: a device's connection on a node.
struct Answerer {
  std::string node;
  ConnId conn = 0;
  std::string device;
};

class Ringing {
public:
  // pushes: how devices without an open page ring (null: they do not).
  Ringing(Context &ctx, const RingSettings &settings, Pushes *pushes)
      : ctx_(ctx), pushes_(pushes), ring_time_(settings.ring_time), per_address_(settings.per_address, 60000),
        per_line_(settings.per_line, 60000) {}

  // {"ring":{"line":ID,"name":CALLER}} from caller, whose address is address.
  void ring(ConnId caller, const std::string &line_id, const std::string &name, const std::string &address,
            const Reply &reply);
  void cancel(ConnId caller, const std::string &ring_id, const Reply &reply);
  void accept(ConnId device, const std::string &ring_id, const Reply &reply);
  void decline(ConnId device, const std::string &ring_id, const Reply &reply);

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
  // An event from the bus; false when it is not a ring event.
  bool on_event(const std::string &kind, const rapidjson::Document &event);
  // Forget limit windows that are over (on a timer).
  void prune(std::int64_t now);

  // How long the two sides of an accepted ring have to open their call.
  static constexpr std::chrono::seconds kConnectWindow{60};
  // A busy mark outlives its owner's last word by this much at most.
  static constexpr std::chrono::seconds kMarkSlack{10};

private:
  // A ring this node owns: its caller is here.
  struct Ring {
    std::string id;
    LineKey line = 0;
    std::string line_name;
    ConnId caller = 0;
    std::string caller_name;
    std::int64_t at_ms = 0;
    std::vector<std::string> pushed;  // devices rung by Web Push
    duet::Timer timer;
  };
  // A ring this node's devices show, whoever owns it.
  struct Shown {
    LineKey line = 0;
    std::string owner;  // the owner's node
    std::string caller_name;
    std::int64_t at_ms = 0;
    duet::Timer timer;  // the owner's silence
  };
  // An accepted ring's call, held by the ring's owner.
  struct Call {
    std::string ring;    // the busy mark's holder
    std::string ids[2];  // the caller's and the device's pairing ids
    duet::Timer timer;   // the connect window until paired, then the mark's refresh
  };

  void start(ConnId caller, const Line &line, const std::string &ring_id, const std::string &name);
  void ring_device(ConnId device, const std::string &ring_id, const Shown &shown);
  // A device's answer goes to the ring's owner.
  void answer(ConnId device, const std::string &ring_id, bool accepted, const Reply &reply);
  void answered(const std::string &ring_id, bool accepted, const Answerer &by);
  // Stops every device of the ring's line (but the answerer's connection),
  // tells the caller (when caller_reason) and forgets the ring. The
  // answering device gets no push about its own answer.
  void end(const std::string &ring_id, const char *device_reason, const char *caller_reason, const Answerer &by = {},
           bool keep_mark = false);
  void no_answer(const std::string &ring_id);
  void connect(const std::string &ring_id, const Answerer &by);
  void end_call(LineKey line);
  void call_event(const char *what, const std::string &a, const std::string &b);

  // The events each node hears.
  void on_incoming(const rapidjson::Document &event);
  void on_stop(const rapidjson::Document &event);
  void on_missed(const rapidjson::Document &event);
  void on_connect(const rapidjson::Document &event);
  void forget_shown(const std::string &ring_id);

  Context &ctx_;
  Pushes *pushes_;
  std::chrono::milliseconds ring_time_;
  WindowLimit per_address_, per_line_;
  std::unordered_map<std::string, Ring> rings_;        // owned, by ring id
  std::unordered_map<ConnId, std::string> callers_;    // a caller's one ring
  std::unordered_map<std::string, Shown> shown_;       // shown here, by ring id
  std::unordered_map<LineKey, std::string> shown_on_;  // line -> the ring shown
  std::unordered_map<LineKey, Call> calls_;            // owned calls, by line
  std::unordered_map<std::string, LineKey> call_ids_;  // pairing id -> line
};

}  // namespace duet::ring
