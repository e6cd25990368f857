// Pairing across every duetd on one Redis (--cluster): the PairingStore
// that keeps the places in Redis (README.md). The rules stay in
// PairingState, run on this node's copy of the places a decision touches;
// the parts here only move places and messages:
// - schema.hpp      the keys, channels and expiries in Redis
// - membership.hpp  this node, its links to Redis and its heartbeat
// - transactions.hpp the WATCH/MULTI/EXEC decisions
// - effects.hpp     a decision's effects, held until it lands; relaying
// - healing.hpp     closing what dead nodes and lost connections left
// - conn_map.hpp    connections of other nodes as PairingState sees them
// - codec.hpp       the JSON places and the frames between nodes
// Without Redis the node goes on alone (degraded): local pairs work,
// messages for other nodes get "cluster-unavailable", and when Redis is
// back the node writes its places again and checks every cross-node call.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "../store.hpp"
#include "conn_map.hpp"
#include "effects.hpp"
#include "membership.hpp"
#include "transactions.hpp"

namespace duet::cluster {

class ClusterStore final : public pairing::PairingStore {
public:
  // local: what to do on this node (sends to local connections, events).
  ClusterStore(const duet::Host &host, Settings settings, const pairing::StoreConfig &config,
               pairing::LocalActions &local);
  ~ClusterStore() override;
  ClusterStore(const ClusterStore &) = delete;
  ClusterStore &operator=(const ClusterStore &) = delete;

  pairing::Outcome open(ConnId conn, std::string_view local, std::string_view remote,
                        std::optional<std::string_view> resume) override;
  pairing::Outcome relay(ConnId conn, PairingState::Kind kind, std::string_view remote, std::string_view json) override;
  void closed(ConnId conn, const char *reason) override;
  void expire(const std::string &id) override;
  std::size_t pairs() const override;
  bool pairs_cheap() const override { return false; }

private:
  struct Meters {
    std::int64_t sent, received, places;
    Membership::Meters links;
    Transactions::Meters decisions;
  };
  static Meters register_meters(const duet::Host &host);

  void links_changed(bool up);
  void rejoin();
  void beat();
  void forget_unrelated_places();
  void on_frame(std::string_view text);
  void update_from(std::string_view id, std::string_view record);
  void grace_over(const std::string &id, const std::string &token);

  const duet::Host &host_;
  pairing::LocalActions &local_;
  Meters meters_;
  Membership membership_;
  ConnMap map_;
  Graces graces_;
  Effects effects_;
  PairingState state_;
  Transactions txns_;
};

}  // namespace duet::cluster
