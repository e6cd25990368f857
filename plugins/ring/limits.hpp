// Abuse limits: at most N events per key (a caller's address, a line) per
// window. A fixed window per key, a count and its start: small enough to
// hold one per address of a flood, and bounded in keys all the same.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace duet::ring {

// The key a caller's address is limited under: an IPv4 address itself, an
// IPv6 address's /64 (one host usually holds a whole /64, so counting its
// addresses one by one would limit nothing).
std::string address_key(const std::string &address);

class WindowLimit {
public:
  WindowLimit(std::uint32_t max, std::int64_t window_ms, std::size_t max_keys = 200000)
      : max_(max), window_ms_(window_ms), max_keys_(max_keys) {}

  // Counts one event for key at now_ms; false when it is over the limit
  // (or when too many keys are counted at once: a flood fails closed).
  bool allow(const std::string &key, std::int64_t now_ms);
  // Forgets keys whose window is over.
  void prune(std::int64_t now_ms);
  std::size_t keys() const { return windows_.size(); }

private:
  struct Window {
    std::int64_t start_ms = 0;
    std::uint32_t count = 0;
  };
  std::uint32_t max_;
  std::int64_t window_ms_;
  std::size_t max_keys_;
  std::unordered_map<std::string, Window> windows_;
};

}  // namespace duet::ring
