#include "conn_map.hpp"

#include <chrono>

namespace duet::cluster {

namespace {

std::uint64_t unix_ms() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

}  // namespace

ConnId ConnMap::local_id(const Where &w) {
  if (!w)
    return 0;
  if (w.node == node_)
    return w.conn;
  auto [it, added] = stand_ins_.emplace(w, 0);
  if (added) {
    it->second = ++next_stand_in_;
    stand_in_of_[it->second] = w;
  }
  return it->second;
}

Where ConnMap::where(ConnId c) const {
  if (c == 0)
    return {};
  if (is_here(c))
    return {node_, c};
  auto it = stand_in_of_.find(c);
  return it == stand_in_of_.end() ? Where{} : it->second;
}

std::optional<PairingState::Record> ConnMap::to_local(const std::optional<Place> &p) {
  if (!p)
    return std::nullopt;
  PairingState::Record r;
  r.conn = local_id(p->conn);
  r.entry.local = p->local;
  r.entry.remote = p->remote;
  r.entry.partner = local_id(p->partner);
  r.entry.away_partner = p->away_partner;
  r.entry.can_resume = p->can_resume;
  r.entry.offerer = p->offerer;
  r.entry.token = p->token;
  auto age = std::chrono::milliseconds(unix_ms() > p->paired_unix_ms ? unix_ms() - p->paired_unix_ms : 0);
  r.entry.paired_at = std::chrono::steady_clock::now() - age;
  r.entry.sdp = p->sdp;
  r.entry.ice = p->ice;
  r.waiting = local_id(p->waiting);
  r.reason = p->reason;
  return r;
}

std::optional<Place> ConnMap::to_place(const std::optional<PairingState::Record> &r) const {
  if (!r)
    return std::nullopt;
  Place p;
  p.conn = where(r->conn);
  p.local = r->entry.local;
  p.remote = r->entry.remote;
  p.partner = where(r->entry.partner);
  p.away_partner = r->entry.away_partner;
  p.can_resume = r->entry.can_resume;
  p.offerer = r->entry.offerer;
  p.token = r->entry.token;
  auto age = std::chrono::steady_clock::now() - r->entry.paired_at;
  p.paired_unix_ms =
      unix_ms() - static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(age).count());
  p.sdp = r->entry.sdp;
  p.ice = r->entry.ice;
  p.waiting = where(r->waiting);
  p.reason = r->reason;
  return p;
}

void ConnMap::forget_unused(const std::set<ConnId> &known, const PairingState &state) {
  for (auto it = stand_in_of_.begin(); it != stand_in_of_.end();) {
    if (!known.count(it->first) && !state.entry_of(it->first)) {
      stand_ins_.erase(it->second);
      it = stand_in_of_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace duet::cluster
