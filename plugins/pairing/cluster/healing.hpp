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
std::size_t heal(pairing::PairingState &state, const std::vector<std::string> &ids,
                 const std::function<bool(pairing::ConnId)> &alive, pairing::Actions &out);

}  // namespace duet::cluster
