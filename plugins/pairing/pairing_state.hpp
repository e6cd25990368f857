// The pairing rules (README.md, "Protocol"), free of any I/O so they can be tested
// alone: who is registered under which id, who is paired with whom, and
// whose place is held while their signaling connection is down (resume).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace duet::pairing {

using ConnId = std::uint64_t;

// A call that ended, for the audit trail: never any SDP or ICE content.
struct CallEnded {
  ConnId gone;  // the side whose connection went (0 if it had already gone away)
  ConnId left;  // its partner, now waiting again (0 if gone too)
  std::string_view gone_id, left_id;
  const char *reason;  // a literal: "client", "hangup", "timeout", "takeover", "node-lost", "resume-failed", ...
  std::uint64_t duration_ms;
  std::uint64_t sdp, ice;  // messages relayed in the call, both directions
};

// What the rules ask the outside world to do.
class Actions {
public:
  virtual ~Actions() = default;
  virtual void send(ConnId to, std::string_view json) = 0;
  virtual void send_error(ConnId to, const char *code, const char *message) = 0;
  virtual void close(ConnId conn, int ws_code, const char *reason) = 0;
  virtual void opened(ConnId conn, std::string_view local, std::string_view remote) = 0;
  virtual void paired(ConnId offerer, ConnId answerer, std::string_view offerer_id, std::string_view answerer_id) = 0;
  virtual void unpaired(const CallEnded &call) = 0;
  // Resume: hold id's place; expire(id) must follow after the grace period
  // unless cancel_grace(id) comes first.
  virtual void start_grace(const std::string &id) = 0;
  virtual void cancel_grace(const std::string &id) = 0;
  virtual void resumed(ConnId conn, ConnId partner, std::string_view id) = 0;
  virtual std::string new_token() = 0;
};

// What happens when a second connection opens with an id already in use.
enum class Takeover {
  kReplace,  // the newcomer wins; the older is told ("replaced") and closed
  kRefuse,   // the newcomer gets "id-taken"; the older keeps its place
};

// An error for the sender, or ok() when code is null.
struct Outcome {
  const char *code = nullptr;
  const char *message = nullptr;
  bool ok() const { return code == nullptr; }
};

// WebSocket close code for a connection replaced by a newer one.
constexpr int kCloseReplaced = 4001;

class PairingState {
public:
  PairingState(Actions &actions, Takeover takeover, std::size_t max_id_bytes)
      : actions_(actions), takeover_(takeover), max_id_bytes_(max_id_bytes) {}

  // {"open":{"local":L,"remote":R}} from conn. resume: absent for tutorial
  // clients; "" from a client that can resume but has no token yet; else
  // the token it was given with start.
  Outcome open(ConnId conn, std::string_view local, std::string_view remote,
               std::optional<std::string_view> resume = std::nullopt);
  // An sdp or ice message from conn naming remote: forwarded whole to the partner.
  enum class Kind { kSdp, kIce };
  Outcome relay(ConnId conn, Kind kind, std::string_view remote, std::string_view json);
  // Who such a message goes to: conn's partner (to, the message counted in
  // their call), or an error for the sender (to 0). relay() sends to it; a
  // store that delivers elsewhere (the cluster) sends itself.
  struct Route {
    Outcome outcome;
    ConnId to = 0;
  };
  Route route(ConnId conn, Kind kind, std::string_view remote);
  // conn is gone. Its partner is told with {"close":1} and waits again,
  // unless conn can resume: then its place is held (see start_grace).
  void closed(ConnId conn, const char *reason);
  // The grace period of an away id is over: its partner is told now.
  void expire(const std::string &id);

  // For tests and diagnostics.
  ConnId partner_of(ConnId conn) const;
  bool is_registered(ConnId conn) const { return conns_.count(conn) != 0; }
  bool is_away(const std::string &id) const { return away_.count(id) != 0; }
  std::size_t registered() const { return conns_.size(); }
  std::size_t pairs() const { return pairs_; }

  // One id's place. An id either has a connection (conn != 0) or is away:
  // its connection dropped and its partner waits for it to resume.
  struct Entry {
    std::string local;
    std::string remote;
    ConnId partner = 0;
    std::string away_partner;  // set while the partner's connection is away
    bool can_resume = false;
    bool offerer = false;
    std::string token;
    // Of the current call; both sides hold the same start.
    std::chrono::steady_clock::time_point paired_at{};
    std::uint64_t sdp = 0, ice = 0;
  };
  struct Record {
    ConnId conn = 0;  // 0: away
    Entry entry;
    ConnId waiting = 0;  // away: the partner that waits
    std::string reason;  // away: why its connection went
  };
  // For a store shared by several processes (the cluster): read one id's
  // place, or replace it (nullopt: the id is free) before running a rule on
  // places fetched from elsewhere. Connections are opaque ids here too.
  std::optional<Record> record(const std::string &id) const;
  void put_record(const std::string &id, const std::optional<Record> &record);
  // A connection known only as someone's partner, with no place of its own
  // any more (its id moved on): lets closed() end that call cleanly.
  void put_orphan(ConnId conn, Entry entry);
  const Entry *entry_of(ConnId conn) const;
  // fn(id, conn, entry, waiting) for every place, as record(id) would give
  // it (conn 0: away, waiting its partner), without copying any.
  template <class Fn> void for_each_place(Fn fn) const {
    for (const auto &[id, conn] : by_local_)
      fn(id, conn, conns_.at(conn), ConnId(0));
    for (const auto &[id, away] : away_)
      fn(id, ConnId(0), away.entry, away.partner);
  }

private:
  struct Away {
    Entry entry;
    ConnId partner;
    std::string reason;  // why its connection went
  };

  Outcome check_id(std::string_view id) const;
  void drop(ConnId conn, const char *reason);
  void end_away(const std::string &id, const char *reason);
  Outcome move_place(ConnId older, ConnId conn);
  Outcome try_resume(ConnId conn, const std::string &id, std::string_view remote, std::string_view token);
  void start(ConnId newcomer, ConnId waiting);
  CallEnded call_ended(const Entry &gone, ConnId gone_conn, const Entry *left, ConnId left_conn,
                       const char *reason) const;

  Actions &actions_;
  Takeover takeover_;
  std::size_t max_id_bytes_;
  std::unordered_map<ConnId, Entry> conns_;
  std::unordered_map<std::string, ConnId> by_local_;
  std::unordered_map<std::string, Away> away_;  // by id
  std::size_t pairs_ = 0;
};

}  // namespace duet::pairing
