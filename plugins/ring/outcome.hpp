// What a ring message comes to: nothing to say, or an error for its sender.
#pragma once

namespace duet::ring {

// An error for the sender, or ok() when code is null. Both point to
// string literals: they outlive any handler.
struct Outcome {
  const char *code = nullptr;
  const char *message = nullptr;
  bool ok() const { return code == nullptr; }
};

// What a store that cannot answer now gives the sender.
inline const Outcome kStoreFailed = {"store-failed",
                                     "The server could not read or write its lines just now; try again later."};
inline const Outcome kClusterUnavailable = {
    "cluster-unavailable", "The cluster's shared store cannot be reached just now: try again in a moment."};

}  // namespace duet::ring
