// Pairing across every duetd on one Redis (--cluster). The rules stay in
// PairingState; this class only moves places and messages:
// - Redis holds each id's place (key duet:id:ID, a JSON record). A rule runs
//   on this node's copy of the places it touches, fetched under WATCH and
//   written back with MULTI/EXEC together with the messages it sends to
//   other nodes (PUBLISH duet:node:N), so a decision and its messages land
//   at once or not at all; a conflict runs the rule again on fresh places.
// - Relaying is local: the copy knows each local connection's partner, and
//   a partner on another node gets the message through that node's channel.
// - A node refreshes duet:node:N (expiring) every 2 s; places of a node
//   whose key is gone are treated as closed by the next rule that reads
//   them, and every node looks for dead partners every 2 s.
// - Without Redis the node goes on alone (degraded): local pairs work,
//   messages for other nodes get "cluster-unavailable", and when Redis is
//   back the node writes its places again and checks every cross-node call.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "../pairing_state.hpp"
#include "codec.hpp"
#include "duet/plugin.hpp"
#include "redis_link.hpp"

namespace duet::cluster {

using pairing::ConnId;
using pairing::PairingState;

struct Settings {
  RedisTarget target;
  std::string node_name;  // empty: duetd's node id (--node-id, else host name and port)
};

class Cluster final : public pairing::Actions {
public:
  using Body = std::function<void(PairingState &)>;

  // local: what to do on this node (sends to local connections, events).
  Cluster(const duet::Host &host, Settings settings, pairing::Actions &local);
  ~Cluster() override;
  Cluster(const Cluster &) = delete;
  Cluster &operator=(const Cluster &) = delete;

  void attach(PairingState &state) { state_ = &state; }

  // Runs body on the places of ids (and those they lead to) atomically in
  // Redis, one rule at a time; on this node's places alone without Redis.
  void run(std::vector<std::string> ids, Body body);
  // conn closed: its place goes through run.
  void closed(ConnId conn, const char *reason);
  // The connection whose message is being relayed: told when its partner's
  // node cannot be reached.
  void set_sender(ConnId conn) { sender_ = conn; }
  // fn runs on this node after the running rule lands (at once outside one).
  void on_this_node(std::function<void()> fn) { effect(node_, std::move(fn), {}); }
  // Pairs with at least one side on this node.
  std::size_t pairs_here() const;

  // pairing::Actions: a rule's effects, held until its transaction lands.
  void send(ConnId to, std::string_view json) override;
  void send_error(ConnId to, const char *code, const char *message) override;
  void close(ConnId conn, int ws_code, const char *reason) override;
  void opened(ConnId conn, std::string_view local, std::string_view remote) override;
  void paired(ConnId offerer, ConnId answerer, std::string_view offerer_id, std::string_view answerer_id) override;
  void unpaired(const pairing::CallEnded &call) override;
  void start_grace(const std::string &id) override;
  void cancel_grace(const std::string &id) override;
  void resumed(ConnId conn, ConnId partner, std::string_view id) override;
  std::string new_token() override { return local_.new_token(); }

private:
  struct Op {
    std::vector<std::string> ids;
    Body body;
    int attempts = 0;
    ConnId closing = 0;  // the local connection whose close this is
  };
  struct Loaded {
    std::uint64_t version = 0;
    std::optional<Place> place;
    std::string body;  // encode_place(place), to see what a rule changed
  };

  // Transactions.
  void pump();
  void pop_front();
  void load(std::vector<std::string> ids, int round);
  void loaded(const std::vector<std::string> &ids, const redisReply *reply, int round);
  void check_nodes();
  void apply();
  void heal();
  void commit();
  void committed(const redisReply *reply);
  void restore();
  void run_alone(Op &op);
  void effect(std::uint32_t node, std::function<void()> here, std::string frame);

  // The node.
  void links_changed();
  void tick();
  void report_links();
  void rejoin();
  void on_frame(std::string_view text);
  void update_from(std::string_view id, std::string_view record);
  void grace_for(const std::string &id, const std::string &token);

  // Connections cluster-wide: a local id is itself, another node's gets a
  // stand-in with the top bit set (duetd's own ids never reach it).
  bool is_here(ConnId c) const { return !(c & kElsewhere); }
  ConnId local_id(const Where &w);
  Where where(ConnId c) const;
  std::optional<PairingState::Record> to_local(const std::optional<Place> &p);
  std::optional<Place> to_place(const std::optional<PairingState::Record> &r) const;
  bool alive(ConnId c) const;
  std::string key(const std::string &id) const { return "duet:id:" + id; }
  std::string channel(std::uint32_t node) const { return "duet:node:" + std::to_string(node); }
  void publish(std::uint32_t node, const std::string &frame, ConnId sender);

  static constexpr ConnId kElsewhere = ConnId(1) << 63;

  const duet::Host host_;  // a copy: the one init was given is a temporary
  Settings settings_;
  pairing::Actions &local_;
  PairingState *state_ = nullptr;
  std::uint32_t node_;
  std::unique_ptr<RedisLink> txn_link_, cmd_link_, sub_link_;
  bool healthy_ = false;
  bool stopping_ = false;  // in the destructor: replies still arriving change nothing

  std::deque<Op> ops_;
  bool busy_ = false;
  std::map<std::string, Loaded> loaded_;
  std::set<std::uint32_t> dead_nodes_;
  std::set<ConnId> closing_;  // local connections whose close is queued
  bool capturing_ = false;
  std::vector<std::function<void()>> here_;                 // effects on this node, in order
  std::vector<std::pair<std::uint32_t, std::string>> out_;  // frames for other nodes, in order
  ConnId sender_ = 0;

  std::map<Where, ConnId> stand_ins_;
  std::unordered_map<ConnId, Where> stand_in_of_;
  ConnId next_stand_in_ = kElsewhere;
  std::unordered_map<std::string, std::uint64_t> versions_;
  struct Grace {
    std::string token;
    duet::Timer timer;
  };
  std::unordered_map<std::string, Grace> graces_;
  std::chrono::milliseconds grace_ms_{0};
  duet::Timer tick_;

  std::int64_t m_sent_, m_received_, m_reconnects_, m_rtt_, m_up_, m_conflicts_, m_nodes_lost_;
  std::uint64_t reported_reconnects_ = 0;

public:
  void set_grace(std::chrono::milliseconds grace) { grace_ms_ = grace; }
  const std::string &node_name() const { return settings_.node_name; }
};

}  // namespace duet::cluster
