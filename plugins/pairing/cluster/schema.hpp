// What the cluster keeps in Redis, and for how long: the one place its key
// names, channel names, expiries and the heartbeat are written (README.md,
// "In Redis"). Every node of a cluster must agree on all of it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace duet::cluster::schema {

// Key duet:id:ID — one id's place: {"v":VERSION,"place":{…}} (codec.hpp's
// Stored). A freed id keeps a tombstone {"v":N}, so versions only grow.
inline std::string id_key(std::string_view id) { return "duet:id:" + std::string(id); }

// Key duet:node:N — node N's name; the node is alive while the key exists.
inline std::string node_key(std::uint32_t node) { return "duet:node:" + std::to_string(node); }

// Channel duet:node:N — frames for node N's connections (codec.hpp's Frame).
// The same text as node_key(N), in Redis's separate namespace of channels.
inline std::string node_channel(std::uint32_t node) { return "duet:node:" + std::to_string(node); }

// How often a node refreshes its key, and looks for dead nodes among those
// its calls touch.
constexpr std::chrono::milliseconds kHeartbeat{2000};

// A node key lasts three heartbeats: partners of a dead node hear of it
// within kNodeTtl + kHeartbeat (8 s; README.md says "at most 10 s").
constexpr std::chrono::milliseconds kNodeTtl{6000};
static_assert(kNodeTtl >= 3 * kHeartbeat, "a node key must survive a late refresh");

// How long a freed id's tombstone keeps its version.
constexpr std::chrono::milliseconds kTombstone{60000};

// A duration as Redis's PX argument wants it: whole milliseconds, in text.
inline std::string px(std::chrono::milliseconds ms) { return std::to_string(ms.count()); }

}  // namespace duet::cluster::schema
