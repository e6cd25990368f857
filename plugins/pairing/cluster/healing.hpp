// Healing (README.md): before every rule, the places it may meet that
// nobody closed are closed — those of connections on dead nodes, of local
// connections that went while Redis was away, partners whose id moved on.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "../pairing_state.hpp"

namespace duet::cluster {

// ids: the places a decision loaded into state. alive(conn): whether a
// connection a place names is still there. Effects (a {"close":1}) go
// through out. Returns how many places of lost connections were closed.
// settling: Redis has just come back (restarted empty, or a replica promoted
// before it had every write) and the other nodes may not have written their
// places back yet: a partner with no place is not a call that ended (one
// whose id someone else holds still is).
std::size_t heal(pairing::PairingState &state, const std::vector<std::string> &ids,
                 const std::function<bool(pairing::ConnId)> &alive, pairing::Actions &out, bool settling = false);

}  // namespace duet::cluster
