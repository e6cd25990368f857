#include "healing.hpp"

#include <string_view>

#include "conn_map.hpp"

namespace duet::cluster {

using pairing::ConnId;
using pairing::PairingState;

namespace {

constexpr std::string_view kClose = R"({"close":1})";

// A place with a connection: its partner must still hold the other side.
void heal_partner(PairingState &state, const std::string &id, const PairingState::Record &r, pairing::Actions &out,
                  bool settling) {
  if (r.entry.partner) {
    auto p = state.record(r.entry.remote);
    if (!p && settling)
      return;
    if (!p || p->conn != r.entry.partner) {
      PairingState::Entry ghost;
      ghost.local = r.entry.remote;
      ghost.remote = id;
      ghost.partner = r.conn;
      state.put_orphan(r.entry.partner, ghost);
      state.closed(r.entry.partner, "client");
    }
  } else if (!r.entry.away_partner.empty()) {
    auto a = state.record(r.entry.away_partner);
    if (!a && settling)
      return;
    if (!a || a->conn != 0 || a->waiting != r.conn) {
      PairingState::Record fixed = r;
      fixed.entry.away_partner.clear();
      state.put_record(id, fixed);
      out.send(r.conn, kClose);
    }
  }
}

}  // namespace

std::size_t heal(PairingState &state, const std::vector<std::string> &ids, const std::function<bool(ConnId)> &alive,
                 pairing::Actions &out, bool settling) {
  std::size_t lost = 0;
  for (const auto &id : ids)
    if (auto r = state.record(id); r && r->conn && !alive(r->conn)) {
      lost++;
      // A connection of another node is lost with its node; one of ours just went.
      state.closed(r->conn, (r->conn & ConnMap::kElsewhere) ? "node-lost" : "client");
    }
  for (const auto &id : ids) {
    auto r = state.record(id);
    if (!r)
      continue;
    if (r->conn == 0) {  // away: its partner must still be waiting for it
      auto w = state.record(r->entry.remote);
      if (!w && settling)
        continue;
      if (!w || w->conn != r->waiting)
        state.put_record(id, std::nullopt);
      continue;
    }
    heal_partner(state, id, *r, out, settling);
  }
  return lost;
}

}  // namespace duet::cluster
