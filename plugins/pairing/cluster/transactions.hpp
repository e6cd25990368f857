// The transaction engine (README.md, "A pairing decision"): runs a rule on
// this node's copy of the places it touches, fetched from Redis under WATCH
// and written back with MULTI/EXEC together with the frames it sends to
// other nodes, so a decision and its messages land at once or not at all; a
// conflict runs it again on fresh places. One decision at a time (WATCH
// belongs to the link); without Redis, decisions run on the copy alone.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "codec.hpp"
#include "conn_map.hpp"
#include "effects.hpp"
#include "membership.hpp"

namespace duet::cluster {

class Transactions {
public:
  // Before the node's copy takes a place from Redis or another node (now),
  // after this node was cut off from Redis (README.md, "Partitions"): a live
  // connection here whose id now names another connection is told it was
  // replaced. Returns false when the copy must keep its own place instead:
  // the others freed the id of a connection that is still here, and the
  // rejoin writes it back (unless someone took it meanwhile).
  bool take_place(const std::string &id, const std::optional<pairing::PairingState::Record> &now);
  using Body = std::function<void(PairingState &)>;
  struct Meters {
    std::int64_t conflicts, nodes_lost;
  };

  Transactions(const duet::Host &host, Membership &membership, ConnMap &map, PairingState &state, Effects &effects,
               Meters meters)
      : host_(host), membership_(membership), map_(map), state_(state), effects_(effects), meters_(meters) {}

  // Runs body on the places of ids (and those they lead to). closing: the
  // local connection whose close this is (until it lands, healing leaves it).
  void run(std::vector<std::string> ids, Body body, pairing::ConnId closing = 0);
  // Starts the next decision, if none runs (after the links change too).
  void pump();
  // Queued decisions are dropped; replies arriving from now on change nothing.
  void stop();
  // No decision runs or waits.
  bool idle() const { return !busy_ && ops_.empty(); }

  // The version of id's place this node last saw.
  std::uint64_t version(const std::string &id) const {
    auto v = versions_.find(id);
    return v == versions_.end() ? 0 : v->second.version;
  }
  // Forgets the versions of ids the copy no longer holds, once no frame about
  // them can still come (a freed id's tombstone lives kTombstone in Redis):
  // without this a node keeps one entry per id it ever saw.
  void forget_old_versions();
  // Whether version is newer than the one seen for id (then it is seen).
  bool newer(const std::string &id, std::uint64_t version);

private:
  struct Op {
    std::vector<std::string> ids;
    Body body;
    int attempts = 0;
    pairing::ConnId closing = 0;
  };
  struct Loaded {
    std::uint64_t version = 0;
    std::optional<Place> place;
    std::string body;  // encode_place(place), to see what a rule changed
  };

  void pop_front();
  void run_alone(Op &op);
  void load(std::vector<std::string> ids, int round);
  void loaded(const std::vector<std::string> &ids, const redisReply *reply, int round);
  void check_nodes();
  void apply();
  bool alive(pairing::ConnId c) const;

  void commit();
  std::vector<std::vector<std::string>> changes(std::vector<std::pair<std::string, std::uint64_t>> &versions);
  void committed(const redisReply *reply);
  void failed(const redisReply *reply);
  void restore();
  void give_up();

  const duet::Host &host_;
  Membership &membership_;
  ConnMap &map_;
  PairingState &state_;
  Effects &effects_;
  Meters meters_;
  bool stopping_ = false;

  std::deque<Op> ops_;
  bool busy_ = false;
  std::map<std::string, Loaded> loaded_;
  std::set<std::uint32_t> dead_nodes_;
  std::set<pairing::ConnId> closing_;        // local connections whose close is queued
  std::set<pairing::ConnId> told_replaced_;  // local connections told so after a cut, until their close
  Effects::Held held_;
  struct Version {
    std::uint64_t version = 0;
    std::chrono::steady_clock::time_point seen;
  };
  std::unordered_map<std::string, Version> versions_;
  void set_version(const std::string &id, std::uint64_t version) {
    versions_[id] = {version, std::chrono::steady_clock::now()};
  }
};

}  // namespace duet::cluster
