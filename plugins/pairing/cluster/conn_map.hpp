// Connections cluster-wide. PairingState knows connections by one number:
// on this node a local connection is its own id, and another node's gets a
// stand-in with the top bit set (duetd's own ids never reach it). This maps
// between those numbers and codec.hpp's Where, and between PairingState's
// records and the places Redis holds.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "../pairing_state.hpp"
#include "codec.hpp"

namespace duet::cluster {

using pairing::ConnId;
using pairing::PairingState;

class ConnMap {
public:
  // The bit of the stand-in numbers of connections on other nodes.
  static constexpr ConnId kElsewhere = ConnId(1) << 63;

  explicit ConnMap(std::uint32_t node) : node_(node) {}

  std::uint32_t node() const { return node_; }
  bool is_here(ConnId c) const { return !(c & kElsewhere); }
  // The number PairingState knows w by (a stand-in is made when needed).
  ConnId local_id(const Where &w);
  // Where c is; none for 0 or a stand-in forgotten.
  Where where(ConnId c) const;

  std::optional<PairingState::Record> to_local(const std::optional<Place> &p);
  std::optional<Place> to_place(const std::optional<PairingState::Record> &r) const;

  // Forgets the stand-ins no place names any more (known: every connection
  // the places name).
  void forget_unused(const std::set<ConnId> &known, const PairingState &state);

private:
  std::uint32_t node_;
  std::map<Where, ConnId> stand_ins_;
  std::unordered_map<ConnId, Where> stand_in_of_;
  ConnId next_stand_in_ = kElsewhere;
};

}  // namespace duet::cluster
