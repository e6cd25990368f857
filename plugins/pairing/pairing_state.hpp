// The pairing rules of protocol.md, free of any I/O so they can be tested
// alone: who is registered under which id, who is paired with whom.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace duet::pairing {

using ConnId = std::uint64_t;

// A call that ended, for the audit trail: never any SDP or ICE content.
struct CallEnded {
  ConnId gone;  // the side whose connection went
  ConnId left;  // its partner, now waiting again
  std::string_view gone_id, left_id;
  const char *reason;  // "client", "timeout", "takeover", ...
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

  // {"open":{"local":L,"remote":R}} from conn.
  Outcome open(ConnId conn, std::string_view local, std::string_view remote);
  // An sdp or ice message from conn naming remote: forwarded whole to the partner.
  enum class Kind { kSdp, kIce };
  Outcome relay(ConnId conn, Kind kind, std::string_view remote, std::string_view json);
  // conn is gone: its partner is told with {"close":1} and waits again.
  void closed(ConnId conn, const char *reason);

  // For tests and diagnostics.
  ConnId partner_of(ConnId conn) const;
  bool is_registered(ConnId conn) const { return conns_.count(conn) != 0; }
  std::size_t registered() const { return conns_.size(); }
  std::size_t pairs() const { return pairs_; }

 private:
  struct Entry {
    std::string local;
    std::string remote;
    ConnId partner = 0;
    // Of the current call, kept on the side that became the offerer.
    std::chrono::steady_clock::time_point paired_at{};
    std::uint64_t sdp = 0, ice = 0;
  };

  Outcome check_id(std::string_view id) const;
  void drop(ConnId conn, const char *reason);

  Actions &actions_;
  Takeover takeover_;
  std::size_t max_id_bytes_;
  std::unordered_map<ConnId, Entry> conns_;
  std::unordered_map<std::string, ConnId> by_local_;
  std::size_t pairs_ = 0;
};

}  // namespace duet::pairing
