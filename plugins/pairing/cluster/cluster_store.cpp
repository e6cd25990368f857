#include "cluster_store.hpp"

#include <map>
#include <memory>
#include <set>

#include "schema.hpp"

namespace duet::cluster {

ClusterStore::Meters ClusterStore::register_meters(const duet::Host &host) {
  Meters m{};
  m.sent = host.metric("cluster_messages_sent_total", "Messages sent to other nodes.", DUET_METRIC_COUNTER);
  m.received =
      host.metric("cluster_messages_received_total", "Messages received from other nodes.", DUET_METRIC_COUNTER);
  m.places = host.metric("cluster_places_held",
                         "Places (ids) in this node's copy: its connections' and their partners'.", DUET_METRIC_GAUGE);
  m.links.reconnects =
      host.metric("cluster_redis_reconnects_total", "Links to Redis made again after a loss.", DUET_METRIC_COUNTER);
  m.links.rtt =
      host.metric("cluster_redis_rtt_microseconds", "Round trip of the last PING to Redis.", DUET_METRIC_GAUGE);
  m.links.up = host.metric("cluster_redis_up", "1 while every link to Redis is up.", DUET_METRIC_GAUGE);
  m.decisions.conflicts =
      host.metric("cluster_transaction_retries_total",
                  "Pairing decisions run again because another node changed the same ids first.", DUET_METRIC_COUNTER);
  m.decisions.nodes_lost =
      host.metric("cluster_places_of_lost_nodes_total",
                  "Places of connections on dead nodes (or gone) cleaned up here.", DUET_METRIC_COUNTER);
  return m;
}

ClusterStore::ClusterStore(const duet::Host &host, Settings settings, const pairing::StoreConfig &config,
                           pairing::LocalActions &local)
    : host_(host), local_(local), meters_(register_meters(host)),
      membership_(host, std::move(settings),
                  {[this](bool up) { links_changed(up); }, [this] { beat(); },
                   [this](std::string_view text) { on_frame(text); }},
                  meters_.links),
      map_(membership_.node()),
      graces_(host, config.grace, [this](const std::string &id, const std::string &token) { grace_over(id, token); }),
      effects_(host, membership_, map_, state_, local, graces_, meters_.sent),
      state_(effects_, config.takeover, config.max_id_bytes),
      txns_(host, membership_, map_, state_, effects_, meters_.decisions) {
  membership_.start();
}

ClusterStore::~ClusterStore() {
  txns_.stop();
  effects_.stop();
  membership_.stop();  // the links' pending replies run now: they find nothing to do
}

// The rule runs once the places are in: a refusal is told then.
pairing::Outcome ClusterStore::open(ConnId conn, std::string_view local, std::string_view remote,
                                    std::optional<std::string_view> resume) {
  std::optional<std::string> token;
  if (resume)
    token = std::string(*resume);
  txns_.run({std::string(local), std::string(remote)},
            [this, conn, l = std::string(local), r = std::string(remote), token](PairingState &s) {
              pairing::Outcome o = s.open(conn, l, r, token ? std::optional<std::string_view>(*token) : std::nullopt);
              if (!o.ok())
                effects_.on_this_node([this, conn, o] { local_.rejected(conn, o.code, o.message ? o.message : ""); });
            });
  return {};
}

// Relaying does not touch Redis's keys: the copy knows conn's partner.
pairing::Outcome ClusterStore::relay(ConnId conn, PairingState::Kind kind, std::string_view remote,
                                     std::string_view json) {
  PairingState::Route route = state_.route(conn, kind, remote);
  if (route.to)
    effects_.relay(route.to, json, conn);
  return route.outcome;
}

void ClusterStore::closed(ConnId conn, const char *reason) {
  const PairingState::Entry *e = state_.entry_of(conn);
  if (!e)
    return;
  txns_.run(
      {e->local, e->remote}, [conn, reason](PairingState &s) { s.closed(conn, reason); }, conn);
}

void ClusterStore::expire(const std::string &id) {
  txns_.run({id}, [id](PairingState &s) {
    if (auto r = s.record(id); r && r->conn == 0)
      s.expire(id);
  });
}

void ClusterStore::grace_over(const std::string &id, const std::string &token) {
  txns_.run({id}, [id, token](PairingState &s) {
    // Only the absence this timer was for: the id may have come back and gone again.
    if (auto r = s.record(id); r && r->conn == 0 && r->entry.token == token)
      s.expire(id);
  });
}

std::size_t ClusterStore::pairs() const {
  std::size_t n = 0;
  state_.for_each_place([&](const std::string &, ConnId conn, const PairingState::Entry &e, ConnId) {
    if (!conn || !map_.is_here(conn))
      return;
    // A pair with both sides here counts once: at its lower connection id.
    bool in_call = e.partner && (!map_.is_here(e.partner) || conn < e.partner);
    if (in_call || !e.away_partner.empty())
      n++;
  });
  return n;
}

void ClusterStore::links_changed(bool up) {
  if (up)
    rejoin();
  txns_.pump();
}

// After a start or a loss (membership has said we live): write back the
// places of our connections that Redis lacks (it may have restarted empty),
// then check every call with a side here against what Redis holds.
void ClusterStore::rejoin() {
  std::vector<std::string> ours;
  state_.for_each_place([&](const std::string &id, ConnId conn, const PairingState::Entry &, ConnId waiting) {
    if ((conn && map_.is_here(conn)) || (conn == 0 && map_.is_here(waiting)))
      ours.push_back(id);
  });
  // On the transaction link: the re-checks below, on the same link, then
  // find them (on another link they could run first and find nothing).
  for (const auto &id : ours) {
    std::string value = encode(Stored{txns_.version(id) + 1, map_.to_place(state_.record(id))});
    membership_.transactions().command({"SET", schema::id_key(id), value, "NX"}, [](const redisReply *) {});
  }
  for (const auto &id : ours)
    txns_.run({id}, [](PairingState &) {});
}

// Which nodes do our calls touch? Those found dead: a decision on each of
// their ids, which healing closes.
void ClusterStore::beat() {
  forget_unrelated_places();
  txns_.forget_old_versions();
  std::map<std::uint32_t, std::set<std::string>> ids_by_node;
  std::set<ConnId> known;
  std::int64_t places = 0;
  state_.for_each_place([&](const std::string &id, ConnId conn, const PairingState::Entry &e, ConnId waiting) {
    places++;
    for (ConnId c : {conn, e.partner, waiting}) {
      known.insert(c);
      if (c && !map_.is_here(c))
        ids_by_node[map_.where(c).node].insert(id);
    }
  });
  map_.forget_unused(known, state_);
  host_.metric_set(meters_.places, places);
  if (ids_by_node.empty())
    return;
  std::set<std::uint32_t> nodes;
  for (const auto &[n, ids] : ids_by_node)
    nodes.insert(n);
  membership_.find_dead(nodes, [this, ids_by_node](std::uint32_t n) {
    for (const auto &id : ids_by_node.at(n))
      txns_.run({id}, [](PairingState &) {});
  });
}

// A place in the copy that names no connection here (a partner's, kept
// after the call ended) gets no more U frames: it would only go stale and
// stay, one per id this node ever shared a call with. While Redis is up
// every decision loads its places from there, so the copy can let it go.
void ClusterStore::forget_unrelated_places() {
  if (!membership_.healthy() || membership_.settling() || !txns_.idle())
    return;
  auto here = [this](ConnId c) { return c && map_.is_here(c); };
  std::vector<std::string> unrelated;
  state_.for_each_place([&](const std::string &id, ConnId conn, const PairingState::Entry &e, ConnId waiting) {
    if (!here(conn) && !here(e.partner) && !here(waiting))
      unrelated.push_back(id);
  });
  for (const auto &id : unrelated)
    state_.put_record(id, std::nullopt);
}

void ClusterStore::on_frame(std::string_view text) {
  auto f = parse_frame(text);
  if (!f) {
    host_.log(DUET_LOG_WARN, "cluster: ignored a malformed message from another node");
    return;
  }
  host_.metric_add(meters_.received, 1);
  switch (f->kind) {
  case 'U':
    update_from(f->a, f->b);
    break;
  case 'G':
    graces_.start(std::string(f->b), std::string(f->a));
    break;
  default:
    effects_.deliver(*f);
    break;
  }
}

// A place this node holds a copy of changed on another node.
void ClusterStore::update_from(std::string_view id, std::string_view record) {
  auto stored = decode(record);
  if (!stored || !txns_.newer(std::string(id), stored->version))
    return;  // not a record, or older than what we hold (frames from two nodes cross)
  auto place = map_.to_local(stored->place);
  if (txns_.take_place(std::string(id), place))
    state_.put_record(std::string(id), place);
}

}  // namespace duet::cluster

namespace duet::pairing {

std::unique_ptr<PairingStore> make_cluster_store(const duet::Host &host, const StoreConfig &config,
                                                 LocalActions &local) {
  const duet::Options options = host.options();
  cluster::Settings settings{cluster::redis_target(options), {}};
  cluster::watch_sentinels(host, settings.target);  // one watch for the three links
  return std::make_unique<cluster::ClusterStore>(host, std::move(settings), config, local);
}

}  // namespace duet::pairing
