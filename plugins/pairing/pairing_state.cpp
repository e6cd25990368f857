#include "pairing_state.hpp"

#include <string>

namespace duet::pairing {

namespace {
constexpr std::string_view kClose = R"({"close":1})";

// A connection that was lost (not closed on purpose) may come back.
bool can_wait_for_resume(std::string_view reason) {
  return reason == "client" || reason == "timeout" || reason == "node-lost" || reason == "drain";
}

// {"start":"offer"} exactly as the tutorial sends it; a client that asked to
// resume also gets its token: {"start":"offer","resume":"TOKEN"}.
std::string start_message(const char *role, const std::string &token) {
  std::string m = std::string(R"({"start":")") + role + "\"";
  if (!token.empty())
    m += R"(,"resume":")" + token + "\"";
  return m + "}";
}

// Tells a resumed side its role: the offerer restarts ICE with a new offer.
std::string resumed_message(bool offerer, const std::string *token) {
  std::string m = std::string(R"({"resumed":")") + (offerer ? "offer" : "answer") + "\"";
  if (token)
    m += R"(,"resume":")" + *token + "\"";
  return m + "}";
}
}  // namespace

Outcome PairingState::check_id(std::string_view id) const {
  if (id.empty())
    return {"bad-request", "Ids must not be empty."};
  if (id.size() > max_id_bytes_)
    return {"bad-request", "An id is longer than this server allows."};
  for (std::size_t i = 0; i < id.size(); i++) {
    auto c = static_cast<unsigned char>(id[i]);
    // C0 controls, DEL, and C1 controls (U+0080-U+009F, 0xC2 0x80-0x9F in UTF-8).
    bool c1 = c == 0xC2 && i + 1 < id.size() && static_cast<unsigned char>(id[i + 1]) < 0xA0;
    if (c < 0x20 || c == 0x7f || c1)
      return {"bad-request", "Ids must not contain control characters."};
  }
  return {};
}

CallEnded PairingState::call_ended(const Entry &gone, ConnId gone_conn, const Entry *left, ConnId left_conn,
                                   const char *reason) const {
  auto duration = std::chrono::steady_clock::now() - gone.paired_at;
  return {gone_conn,
          left_conn,
          gone.local,
          left ? std::string_view(left->local) : std::string_view(gone.remote),
          reason,
          static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(duration).count()),
          gone.sdp + (left ? left->sdp : 0),
          gone.ice + (left ? left->ice : 0)};
}

Outcome PairingState::open(ConnId conn, std::string_view local, std::string_view remote,
                           std::optional<std::string_view> resume) {
  if (auto bad = check_id(local); !bad.ok())
    return bad;
  if (auto bad = check_id(remote); !bad.ok())
    return bad;
  if (local == remote)
    return {"bad-request", "You cannot call yourself: local and remote ids must differ."};
  if (conns_.count(conn))
    return {"already-open", "This connection already sent open; reconnect to use other ids."};

  std::string local_id(local);
  if (away_.count(local_id)) {
    if (resume && !resume->empty()) {
      Outcome o = try_resume(conn, local_id, remote, *resume);
      if (o.ok() || o.code != std::string_view("resume-failed"))
        return o;
    }
    // No token, or not the one given: that call is over, and this is a new start.
    end_away(local_id, "resume-failed");
  }

  if (auto old = by_local_.find(local_id); old != by_local_.end()) {
    // The holder of the token is back on a new connection before the old
    // one was noticed dead (half-open TCP): move the place, not a takeover.
    Entry &prev = conns_.at(old->second);
    if (resume && !resume->empty() && prev.can_resume && !prev.token.empty() && *resume == prev.token &&
        remote == prev.remote)
      return move_place(old->second, conn);
    if (takeover_ == Takeover::kRefuse)
      return {"id-taken", "Another connection is using this id; pick another or close the other one."};
    ConnId older = old->second;
    actions_.send_error(older, "replaced", "A newer connection opened with your id; this one is closed.");
    actions_.close(older, kCloseReplaced, "replaced by a newer connection");
    drop(older, "takeover");
  }

  Entry entry;
  entry.local = local_id;
  entry.remote = std::string(remote);
  entry.can_resume = resume.has_value();
  conns_[conn] = std::move(entry);
  by_local_[local_id] = conn;
  actions_.opened(conn, local, remote);

  // Only mutual requests pair: the one waiting under R must be asking for L.
  auto waiting = by_local_.find(std::string(remote));
  if (waiting == by_local_.end())
    return {};
  Entry &other = conns_[waiting->second];
  if (other.remote != local || other.partner != 0 || !other.away_partner.empty())
    return {};
  start(conn, waiting->second);
  return {};
}

void PairingState::start(ConnId newcomer, ConnId waiting) {
  Entry &self = conns_[newcomer];
  Entry &other = conns_[waiting];
  self.partner = waiting;
  other.partner = newcomer;
  self.offerer = true;
  other.offerer = false;
  self.paired_at = other.paired_at = std::chrono::steady_clock::now();
  self.sdp = self.ice = other.sdp = other.ice = 0;
  self.token = self.can_resume ? actions_.new_token() : std::string();
  other.token = other.can_resume ? actions_.new_token() : std::string();
  pairs_++;
  actions_.send(waiting, start_message("answer", other.token));
  actions_.send(newcomer, start_message("offer", self.token));
  actions_.paired(newcomer, waiting, self.local, other.local);
}

Outcome PairingState::try_resume(ConnId conn, const std::string &id, std::string_view remote, std::string_view token) {
  Away &away = away_.at(id);
  if (token != away.entry.token || remote != away.entry.remote)
    return {"resume-failed", nullptr};
  actions_.cancel_grace(id);
  Entry entry = std::move(away.entry);
  ConnId partner = away.partner;
  away_.erase(id);

  entry.partner = partner;
  entry.token = actions_.new_token();
  Entry &other = conns_.at(partner);
  other.partner = conn;
  other.away_partner.clear();
  bool offerer = entry.offerer;
  std::string new_token = entry.token;
  conns_[conn] = std::move(entry);
  by_local_[id] = conn;
  actions_.opened(conn, id, remote);
  actions_.send(conn, resumed_message(offerer, &new_token));
  actions_.send(partner, resumed_message(!offerer, nullptr));
  actions_.resumed(conn, partner, id);
  return {};
}

Outcome PairingState::move_place(ConnId older, ConnId conn) {
  Entry entry = std::move(conns_.at(older));
  conns_.erase(older);
  entry.token = actions_.new_token();
  ConnId partner = entry.partner;
  bool offerer = entry.offerer;
  std::string token = entry.token, id = entry.local;
  // Its partner may be away itself: that held place now waits for conn.
  if (!entry.away_partner.empty())
    if (auto a = away_.find(entry.away_partner); a != away_.end())
      a->second.partner = conn;
  conns_[conn] = std::move(entry);
  by_local_[id] = conn;
  actions_.opened(conn, id, conns_[conn].remote);
  actions_.close(older, kCloseReplaced, "resumed on a newer connection");
  if (partner != 0) {
    conns_.at(partner).partner = conn;
    actions_.send(conn, resumed_message(offerer, &token));
    actions_.send(partner, resumed_message(!offerer, nullptr));
    actions_.resumed(conn, partner, id);
  }
  return {};
}

Outcome PairingState::relay(ConnId conn, Kind kind, std::string_view remote, std::string_view json) {
  Route r = route(conn, kind, remote);
  if (r.to)
    actions_.send(r.to, json);
  return r.outcome;
}

PairingState::Route PairingState::route(ConnId conn, Kind kind, std::string_view remote) {
  auto it = conns_.find(conn);
  if (it != conns_.end() && it->second.partner == 0 && !it->second.away_partner.empty())
    return {{"partner-away", "The other person's connection dropped; wait for resumed or close."}};
  if (it == conns_.end() || it->second.partner == 0)
    return {{"not-paired", "There is no call to send this to yet: wait for start."}};
  const Entry &partner = conns_.at(it->second.partner);
  if (remote != partner.local)
    return {{"not-your-partner", "You can only send to the person you are paired with."}};
  (kind == Kind::kSdp ? it->second.sdp : it->second.ice)++;
  return {{}, it->second.partner};
}

void PairingState::drop(ConnId conn, const char *reason) {
  auto it = conns_.find(conn);
  if (it == conns_.end())
    return;
  Entry &self = it->second;
  if (ConnId partner = self.partner; partner != 0) {
    Entry &other = conns_[partner];
    other.partner = 0;
    pairs_--;
    actions_.send(partner, kClose);
    actions_.unpaired(call_ended(self, conn, &other, partner, reason));
  } else if (!self.away_partner.empty()) {
    // Both sides are gone now: the held place has nobody to come back to.
    std::string away_id = self.away_partner;
    if (auto a = away_.find(away_id); a != away_.end()) {
      actions_.cancel_grace(away_id);
      pairs_--;
      actions_.unpaired(call_ended(a->second.entry, 0, &self, conn, reason));
      away_.erase(a);
    }
  }
  if (auto owner = by_local_.find(self.local); owner != by_local_.end() && owner->second == conn)
    by_local_.erase(owner);
  conns_.erase(it);
}

void PairingState::end_away(const std::string &id, const char *reason) {
  auto a = away_.find(id);
  if (a == away_.end())
    return;
  actions_.cancel_grace(id);
  ConnId partner = a->second.partner;
  Entry &other = conns_.at(partner);
  other.away_partner.clear();
  pairs_--;
  actions_.send(partner, kClose);
  actions_.unpaired(call_ended(a->second.entry, 0, &other, partner, reason));
  away_.erase(a);
}

void PairingState::expire(const std::string &id) {
  auto a = away_.find(id);
  if (a != away_.end()) {
    // A literal: the reason outlives the away entry (the cluster defers it).
    const std::string &why = a->second.reason;
    end_away(id, why == "timeout" ? "timeout" : why == "node-lost" ? "node-lost" : "client");
  }
}

void PairingState::closed(ConnId conn, const char *reason) {
  auto it = conns_.find(conn);
  if (it == conns_.end())
    return;
  Entry &self = it->second;
  // At shutdown both sides go at once: each must hear that its call ended.
  if (std::string_view(reason) == "shutdown" && (self.partner != 0 || !self.away_partner.empty()))
    actions_.send(conn, kClose);
  if (self.partner != 0 && self.can_resume && can_wait_for_resume(reason)) {
    // Hold the place: the partner hears nothing unless the grace period ends.
    ConnId partner = self.partner;
    Entry &other = conns_.at(partner);
    other.partner = 0;
    other.away_partner = self.local;
    std::string id = self.local;
    away_[id] = Away{std::move(self), partner, reason};
    away_[id].entry.partner = 0;
    if (auto owner = by_local_.find(id); owner != by_local_.end() && owner->second == conn)
      by_local_.erase(owner);
    conns_.erase(it);
    actions_.start_grace(id);
    return;
  }
  drop(conn, reason);
}

std::optional<PairingState::Record> PairingState::record(const std::string &id) const {
  if (auto a = away_.find(id); a != away_.end())
    return Record{0, a->second.entry, a->second.partner, a->second.reason};
  if (auto l = by_local_.find(id); l != by_local_.end())
    if (auto c = conns_.find(l->second); c != conns_.end())
      return Record{l->second, c->second, 0, {}};
  return std::nullopt;
}

void PairingState::put_record(const std::string &id, const std::optional<Record> &record) {
  if (auto l = by_local_.find(id); l != by_local_.end()) {
    conns_.erase(l->second);
    by_local_.erase(l);
  }
  away_.erase(id);
  if (!record)
    return;
  if (record->conn == 0) {
    away_[id] = Away{record->entry, record->waiting, record->reason};
    return;
  }
  // The connection may have held another id before (the cache lags): it has one place only.
  if (auto c = conns_.find(record->conn); c != conns_.end()) {
    if (auto l = by_local_.find(c->second.local); l != by_local_.end() && l->second == record->conn)
      by_local_.erase(l);
    conns_.erase(c);
  }
  conns_[record->conn] = record->entry;
  by_local_[id] = record->conn;
}

void PairingState::put_orphan(ConnId conn, Entry entry) { conns_[conn] = std::move(entry); }

const PairingState::Entry *PairingState::entry_of(ConnId conn) const {
  auto it = conns_.find(conn);
  return it == conns_.end() ? nullptr : &it->second;
}

ConnId PairingState::partner_of(ConnId conn) const {
  auto it = conns_.find(conn);
  return it == conns_.end() ? 0 : it->second.partner;
}

}  // namespace duet::pairing
