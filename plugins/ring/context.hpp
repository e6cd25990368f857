// What the parts of the ring plugin share: duetd's host, the store, the
// attached devices, the metrics, and the answer a handler gives.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "attachments.hpp"
#include "duet/plugin.hpp"
#include "store.hpp"

namespace duet::ring {

// An error for the sender, or ok() when code is null. Both point to
// string literals: they outlive on_message.
struct Outcome {
  const char *code = nullptr;
  const char *message = nullptr;
  bool ok() const { return code == nullptr; }
};

// The answer to a line message from a connection that is no device.
inline const Outcome kNotAttached = {"not-attached", "Attach this connection to its line first: "
                                                     "{\"line-attach\":{\"device\":\"…\",\"secret\":\"…\"}}."};

// Counters on /metrics (duet_ring_*).
struct Metrics {
  explicit Metrics(const duet::Host &host);
  std::int64_t rings, accepted, declined, missed, busy, cancelled, limited_caller, limited_line, limited_change,
      limited_full, lines_created, devices_attached;
};

struct Context {
  const duet::Host &host;
  Store &store;
  Attachments &attached;
  Metrics &metrics;
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
