// What the parts of the ring plugin share: duetd's host, the store, the
// bus to the other nodes, the attached devices, the metrics, and how a
// handler answers.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "attachments.hpp"
#include "duet/plugin.hpp"
#include "line_store.hpp"
#include "outcome.hpp"

namespace duet::ring {

// The answer to a line message from a connection that is no device.
inline const Outcome kNotAttached = {"not-attached", "Attach this connection to its line first: "
                                                     "{\"line-attach\":{\"device\":\"…\",\"secret\":\"…\"}}."};

// Counters on /metrics (duet_ring_*).
struct Metrics {
  explicit Metrics(const duet::Host &host);
  std::int64_t rings, accepted, declined, missed, busy, cancelled, limited_caller, limited_line, limited_change,
      limited_full, lines_created, devices_attached;
};

class RingBus;

// How a handler answers its message, at once or after the store replied:
// ok, or the error its sender gets. Called once.
using Reply = std::function<void(Outcome)>;

struct Context {
  const duet::Host &host;
  LineStore &store;
  RingBus &bus;
  Attachments &attached;
  Metrics &metrics;
  // False once conn has closed: an answer that comes later attaches nothing to it.
  std::function<bool(ConnId)> live;
};

// Names (of a line, a device, a caller) are short single-line text.
constexpr std::size_t kMaxNameBytes = 64;

// ok() when text is an acceptable name, else the error. An absent
// text is an error only when required.
Outcome check_name(const std::optional<std::string> &text, bool required);

inline std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace duet::ring
