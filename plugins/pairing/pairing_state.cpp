#include "pairing_state.hpp"

namespace duet::pairing {

namespace {
constexpr std::string_view kStartAnswer = R"({"start":"answer"})";
constexpr std::string_view kStartOffer = R"({"start":"offer"})";
constexpr std::string_view kClose = R"({"close":1})";
}  // namespace

Outcome PairingState::check_id(std::string_view id) const {
  if (id.empty())
    return {"bad-request", "Ids must not be empty."};
  if (id.size() > max_id_bytes_)
    return {"bad-request", "An id is longer than this server allows."};
  for (unsigned char c : id)
    if (c < 0x20 || c == 0x7f)
      return {"bad-request", "Ids must not contain control characters."};
  return {};
}

Outcome PairingState::open(ConnId conn, std::string_view local, std::string_view remote) {
  if (auto bad = check_id(local); !bad.ok())
    return bad;
  if (auto bad = check_id(remote); !bad.ok())
    return bad;
  if (local == remote)
    return {"bad-request", "You cannot call yourself: local and remote ids must differ."};
  if (conns_.count(conn))
    return {"already-open", "This connection already sent open; reconnect to use other ids."};

  std::string local_id(local);
  if (auto old = by_local_.find(local_id); old != by_local_.end()) {
    if (takeover_ == Takeover::kRefuse)
      return {"id-taken", "Another connection is using this id; pick another or close the other one."};
    ConnId older = old->second;
    actions_.send_error(older, "replaced", "A newer connection opened with your id; this one is closed.");
    actions_.close(older, kCloseReplaced, "replaced by a newer connection");
    drop(older, "takeover");
  }

  conns_[conn] = Entry{local_id, std::string(remote)};
  by_local_[local_id] = conn;
  actions_.opened(conn, local, remote);

  // Only mutual requests pair: the one waiting under R must be asking for L.
  auto waiting = by_local_.find(std::string(remote));
  if (waiting == by_local_.end())
    return {};
  Entry &other = conns_[waiting->second];
  if (other.remote != local || other.partner != 0)
    return {};
  Entry &self = conns_[conn];
  self.partner = waiting->second;
  other.partner = conn;
  self.paired_at = other.paired_at = std::chrono::steady_clock::now();
  self.sdp = self.ice = other.sdp = other.ice = 0;
  pairs_++;
  actions_.send(waiting->second, kStartAnswer);
  actions_.send(conn, kStartOffer);
  actions_.paired(conn, waiting->second, self.local, other.local);
  return {};
}

Outcome PairingState::relay(ConnId conn, Kind kind, std::string_view remote, std::string_view json) {
  auto it = conns_.find(conn);
  if (it == conns_.end() || it->second.partner == 0)
    return {"not-paired", "There is no call to send this to yet: wait for start."};
  const Entry &partner = conns_.at(it->second.partner);
  if (remote != partner.local)
    return {"not-your-partner", "You can only send to the person you are paired with."};
  actions_.send(it->second.partner, json);
  (kind == Kind::kSdp ? it->second.sdp : it->second.ice)++;
  return {};
}

void PairingState::drop(ConnId conn, const char *reason) {
  auto it = conns_.find(conn);
  if (it == conns_.end())
    return;
  if (ConnId partner = it->second.partner; partner != 0) {
    Entry &other = conns_[partner];
    other.partner = 0;
    pairs_--;
    actions_.send(partner, kClose);
    auto duration = std::chrono::steady_clock::now() - it->second.paired_at;
    actions_.unpaired({conn, partner, it->second.local, other.local, reason,
                       static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(duration).count()),
                       it->second.sdp + other.sdp, it->second.ice + other.ice});
  }
  if (auto owner = by_local_.find(it->second.local); owner != by_local_.end() && owner->second == conn)
    by_local_.erase(owner);
  conns_.erase(it);
}

void PairingState::closed(ConnId conn, const char *reason) {
  // At shutdown both sides go at once: each must hear that its call ended.
  auto it = conns_.find(conn);
  if (it != conns_.end() && it->second.partner != 0 && std::string_view(reason) == "shutdown")
    actions_.send(conn, kClose);
  drop(conn, reason);
}

ConnId PairingState::partner_of(ConnId conn) const {
  auto it = conns_.find(conn);
  return it == conns_.end() ? 0 : it->second.partner;
}

}  // namespace duet::pairing
