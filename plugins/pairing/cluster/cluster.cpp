#include "cluster.hpp"

#include <algorithm>
#include <random>

#include <hiredis/hiredis.h>
#include <unistd.h>

namespace duet::cluster {

namespace {
constexpr std::chrono::milliseconds kTick{2000};
// A node's key outlives three missed refreshes: partners of a dead node
// hear of it within kNodeTtl + kTick (8 s; README: "at most 10 s").
constexpr const char *kNodeTtlMs = "6000";
constexpr const char *kTombstoneMs = "60000";
constexpr int kMaxAttempts = 50;
constexpr std::string_view kClose = R"({"close":1})";

std::uint64_t unix_ms() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

}  // namespace

Cluster::Cluster(const duet::Host &host, Settings settings, pairing::Actions &local)
    : host_(host), settings_(std::move(settings)), local_(local) {
  std::random_device random;
  do
    node_ = random();
  while (node_ == 0);
  m_sent_ = host_.metric("cluster_messages_sent_total", "Messages sent to other nodes.", DUET_METRIC_COUNTER);
  m_received_ =
      host_.metric("cluster_messages_received_total", "Messages received from other nodes.", DUET_METRIC_COUNTER);
  m_reconnects_ =
      host_.metric("cluster_redis_reconnects_total", "Links to Redis made again after a loss.", DUET_METRIC_COUNTER);
  m_rtt_ = host_.metric("cluster_redis_rtt_microseconds", "Round trip of the last PING to Redis.", DUET_METRIC_GAUGE);
  m_up_ = host_.metric("cluster_redis_up", "1 while every link to Redis is up.", DUET_METRIC_GAUGE);
  m_conflicts_ =
      host_.metric("cluster_transaction_retries_total",
                   "Pairing decisions run again because another node changed the same ids first.", DUET_METRIC_COUNTER);
  m_nodes_lost_ = host_.metric("cluster_places_of_lost_nodes_total",
                               "Places of connections on dead nodes (or gone) cleaned up here.", DUET_METRIC_COUNTER);
  host_.set_health(true, "connecting to Redis");
  RedisLink::Events events{[this] { links_changed(); }, [this] { links_changed(); }};
  txn_link_ = std::make_unique<RedisLink>(host_, settings_.target, "transaction", events);
  cmd_link_ = std::make_unique<RedisLink>(host_, settings_.target, "command", events);
  sub_link_ = std::make_unique<RedisLink>(host_, settings_.target, "subscription", events);
  sub_link_->subscribe(channel(node_), [this](std::string_view text) { on_frame(text); });
  txn_link_->start();
  cmd_link_->start();
  sub_link_->start();
  tick_ = host_.start_timer(kTick, kTick, [this] { tick(); });
}

Cluster::~Cluster() {
  // The links' pending replies run now (with nullptr): they must find nothing to do.
  stopping_ = true;
  ops_.clear();
  txn_link_.reset();
  cmd_link_.reset();
  sub_link_.reset();
}

// ---- connections cluster-wide ----

ConnId Cluster::local_id(const Where &w) {
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

Where Cluster::where(ConnId c) const {
  if (c == 0)
    return {};
  if (is_here(c))
    return {node_, c};
  auto it = stand_in_of_.find(c);
  return it == stand_in_of_.end() ? Where{} : it->second;
}

std::optional<PairingState::Record> Cluster::to_local(const std::optional<Place> &p) {
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

std::optional<Place> Cluster::to_place(const std::optional<PairingState::Record> &r) const {
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

bool Cluster::alive(ConnId c) const {
  if (is_here(c)) {
    duet_conn_info_t info{};
    return closing_.count(c) || host_.conn_info(c, info);
  }
  return !dead_nodes_.count(where(c).node);
}

// ---- transactions ----

void Cluster::run(std::vector<std::string> ids, Body body) {
  ops_.push_back(Op{std::move(ids), std::move(body)});
  pump();
}

void Cluster::closed(ConnId conn, const char *reason) {
  const pairing::PairingState::Entry *e = state_->entry_of(conn);
  if (!e)
    return;
  // Until its decision lands, heal() must not close conn for it (with the wrong reason).
  closing_.insert(conn);
  ops_.push_back(Op{{e->local, e->remote}, [conn, reason](PairingState &s) { s.closed(conn, reason); }, 0, conn});
  pump();
}

void Cluster::pump() {
  if (busy_)
    return;
  if (!healthy_) {
    while (!ops_.empty()) {
      Op op = std::move(ops_.front());
      pop_front();
      run_alone(op);
    }
    return;
  }
  if (ops_.empty())
    return;
  busy_ = true;
  loaded_.clear();
  dead_nodes_.clear();
  load(ops_.front().ids, 0);
}

void Cluster::pop_front() {
  if (ConnId c = ops_.front().closing)
    closing_.erase(c);
  ops_.pop_front();
}

void Cluster::run_alone(Op &op) {
  try {
    op.body(*state_);
  } catch (const std::exception &e) {
    host_.log(DUET_LOG_ERROR, std::string("cluster: a pairing rule failed: ") + e.what());
  }
}

void Cluster::load(std::vector<std::string> ids, int round) {
  std::vector<std::string> keys;
  keys.reserve(ids.size());
  for (const auto &id : ids)
    keys.push_back(key(id));
  txn_link_->command("WATCH", keys, [](const redisReply *) {});
  bool sent = txn_link_->command("MGET", keys,
                                 [this, ids = std::move(ids), round](const redisReply *r) { loaded(ids, r, round); });
  if (!sent) {
    busy_ = false;  // the link went: the op waits at the front, run alone or again
    pump();
  }
}

void Cluster::loaded(const std::vector<std::string> &ids, const redisReply *r, int round) {
  if (stopping_)
    return;
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != ids.size()) {
    if (r)
      host_.log(DUET_LOG_ERROR, "cluster: unexpected answer to MGET");
    busy_ = false;
    if (r)
      pop_front();
    pump();
    return;
  }
  std::vector<std::string> more;
  for (std::size_t i = 0; i < ids.size(); i++) {
    Loaded l;
    const redisReply *e = r->element[i];
    if (e->type == REDIS_REPLY_STRING)
      if (auto stored = decode(std::string_view(e->str, e->len))) {
        l.version = stored->version;
        l.place = std::move(stored->place);
      }
    l.body = encode_place(l.place);
    if (l.place)
      for (const std::string *next : {&l.place->remote, &l.place->away_partner})
        if (!next->empty() && !loaded_.count(*next) && std::find(ids.begin(), ids.end(), *next) == ids.end() &&
            std::find(more.begin(), more.end(), *next) == more.end())
          more.push_back(*next);
    loaded_[ids[i]] = std::move(l);
  }
  if (!more.empty() && round < 3)
    load(std::move(more), round + 1);
  else
    check_nodes();
}

void Cluster::check_nodes() {
  std::set<std::uint32_t> nodes;
  for (const auto &[id, l] : loaded_)
    if (l.place)
      for (const Where *w : {&l.place->conn, &l.place->partner, &l.place->waiting})
        if (*w && w->node != node_)
          nodes.insert(w->node);
  if (nodes.empty()) {
    apply();
    return;
  }
  std::vector<std::string> keys;
  keys.reserve(nodes.size());
  for (auto n : nodes)
    keys.push_back(channel(n));
  bool sent = txn_link_->command("MGET", keys, [this, nodes](const redisReply *r) {
    if (stopping_)
      return;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != nodes.size()) {
      busy_ = false;
      pump();
      return;
    }
    std::size_t i = 0;
    for (auto n : nodes)
      if (r->element[i++]->type == REDIS_REPLY_NIL)
        dead_nodes_.insert(n);
    apply();
  });
  if (!sent) {
    busy_ = false;
    pump();
  }
}

void Cluster::apply() {
  for (const auto &[id, l] : loaded_) {
    state_->put_record(id, to_local(l.place));
    versions_[id] = l.version;
  }
  capturing_ = true;
  here_.clear();
  out_.clear();
  try {
    heal();
    ops_.front().body(*state_);
  } catch (const std::exception &e) {
    host_.log(DUET_LOG_ERROR, std::string("cluster: a pairing rule failed: ") + e.what());
  }
  capturing_ = false;
  commit();
}

// Places a rule may meet that nobody closed: of dead nodes, of local
// connections that went while Redis was away, partners whose id moved on.
void Cluster::heal() {
  std::vector<std::string> ids;
  for (const auto &[id, l] : loaded_)
    ids.push_back(id);
  for (const auto &id : ids)
    if (auto r = state_->record(id); r && r->conn && !alive(r->conn)) {
      host_.metric_add(m_nodes_lost_, 1);
      state_->closed(r->conn, "client");
    }
  for (const auto &id : ids) {
    auto r = state_->record(id);
    if (!r)
      continue;
    if (r->conn == 0) {  // away: its partner must still be waiting for it
      auto w = state_->record(r->entry.remote);
      if (!w || w->conn != r->waiting)
        state_->put_record(id, std::nullopt);
      continue;
    }
    if (r->entry.partner) {
      auto p = state_->record(r->entry.remote);
      if (!p || p->conn != r->entry.partner) {
        PairingState::Entry ghost;
        ghost.local = r->entry.remote;
        ghost.remote = id;
        ghost.partner = r->conn;
        state_->put_orphan(r->entry.partner, ghost);
        state_->closed(r->entry.partner, "client");
      }
    } else if (!r->entry.away_partner.empty()) {
      auto a = state_->record(r->entry.away_partner);
      if (!a || a->conn != 0 || a->waiting != r->conn) {
        PairingState::Record fixed = *r;
        fixed.entry.away_partner.clear();
        state_->put_record(id, fixed);
        send(r->conn, kClose);
      }
    }
  }
}

void Cluster::commit() {
  struct Change {
    std::string id, value;
  };
  std::vector<Change> changes;
  std::set<std::uint32_t> told;
  std::vector<std::vector<std::string>> commands;
  for (auto &[id, l] : loaded_) {
    std::optional<Place> now = to_place(state_->record(id));
    if (encode_place(now) == l.body)
      continue;
    std::string value = encode(Stored{l.version + 1, now});
    if (now)
      commands.push_back({"SET", key(id), value});
    else
      commands.push_back({"SET", key(id), value, "PX", kTombstoneMs});
    for (const std::optional<Place> *p : {&l.place, &now})
      if (*p)
        for (const Where *w : {&(*p)->conn, &(*p)->partner, &(*p)->waiting})
          if (*w && w->node != node_)
            told.insert(w->node);
    changes.push_back({id, std::move(value)});
  }
  for (auto n : told)
    for (const auto &c : changes)
      commands.push_back({"PUBLISH", channel(n), frame_update(c.id, c.value)});
  for (auto &[n, frame] : out_)
    commands.push_back({"PUBLISH", channel(n), std::move(frame)});
  commands.push_back({"SET", channel(node_), settings_.node_name, "PX", kNodeTtlMs});
  txn_link_->command({"MULTI"}, [](const redisReply *) {});
  for (const auto &c : commands)
    txn_link_->command(std::vector<std::string_view>(c.begin(), c.end()), [](const redisReply *) {});
  auto versions = std::make_shared<std::vector<std::pair<std::string, std::uint64_t>>>();
  for (const auto &c : changes)
    versions->emplace_back(c.id, loaded_[c.id].version + 1);
  bool sent = txn_link_->command({"EXEC"}, [this, versions](const redisReply *r) {
    if (stopping_)
      return;
    if (r && r->type == REDIS_REPLY_ARRAY)
      for (const auto &[id, v] : *versions)
        versions_[id] = v;
    committed(r);
  });
  if (!sent)
    committed(nullptr);
}

void Cluster::committed(const redisReply *r) {
  if (stopping_)
    return;
  busy_ = false;
  if (!r || r->type != REDIS_REPLY_ARRAY) {
    restore();
    if (r && r->type == REDIS_REPLY_NIL) {
      host_.metric_add(m_conflicts_, 1);
      if (++ops_.front().attempts > kMaxAttempts) {
        host_.log(DUET_LOG_ERROR, "cluster: gave up a pairing decision after " + std::to_string(kMaxAttempts) +
                                      " conflicts with other nodes");
        pop_front();
      }
    } else if (r) {
      host_.log(DUET_LOG_ERROR, std::string("cluster: Redis refused a transaction: ") +
                                    (r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : "?"));
      pop_front();
    }
    pump();  // without Redis the op now runs alone
    return;
  }
  pop_front();
  auto effects = std::move(here_);
  here_.clear();
  for (auto &fn : effects)
    fn();
  pump();
}

void Cluster::restore() {
  for (const auto &[id, l] : loaded_)
    state_->put_record(id, to_local(l.place));
}

// ---- a rule's effects ----

void Cluster::effect(std::uint32_t node, std::function<void()> here, std::string frame) {
  if (node == node_) {
    if (capturing_)
      here_.push_back(std::move(here));
    else
      here();
  } else if (capturing_) {
    out_.emplace_back(node, std::move(frame));
  } else {
    publish(node, frame, sender_);
  }
}

void Cluster::publish(std::uint32_t node, const std::string &frame, ConnId sender) {
  auto unreachable = [this, sender] {
    if (sender && !stopping_)
      local_.send_error(sender, "cluster-unavailable",
                        "The other person is on another server that cannot be reached now; try again shortly.");
  };
  if (!healthy_ || !cmd_link_->command({"PUBLISH", channel(node), frame}, [unreachable](const redisReply *r) {
        if (!r || (r->type == REDIS_REPLY_INTEGER && r->integer == 0))
          unreachable();
      })) {
    unreachable();
    return;
  }
  host_.metric_add(m_sent_, 1);
}

void Cluster::send(ConnId to, std::string_view json) {
  if (!capturing_) {  // the relay: no copy, no allocation for a local partner
    if (is_here(to))
      local_.send(to, json);
    else if (Where w = where(to))
      publish(w.node, frame_send(w.conn, json), sender_);
    return;
  }
  Where w = where(to);
  effect(
      w.node, [this, to, text = std::string(json)] { local_.send(to, text); }, frame_send(w.conn, json));
}

void Cluster::send_error(ConnId to, const char *code, const char *message) {
  Where w = where(to);
  effect(
      w.node, [this, to, code, message] { local_.send_error(to, code, message); }, frame_error(w.conn, code, message));
}

void Cluster::close(ConnId conn, int ws_code, const char *reason) {
  Where w = where(conn);
  effect(
      w.node, [this, conn, ws_code, reason] { local_.close(conn, ws_code, reason); },
      frame_close(w.conn, ws_code, reason));
}

void Cluster::opened(ConnId conn, std::string_view local, std::string_view remote) {
  effect(node_, [this, conn, l = std::string(local), r = std::string(remote)] { local_.opened(conn, l, r); }, {});
}

void Cluster::paired(ConnId offerer, ConnId answerer, std::string_view offerer_id, std::string_view answerer_id) {
  effect(node_,
         [this, offerer, answerer, o = std::string(offerer_id), a = std::string(answerer_id)] {
           local_.paired(offerer, is_here(answerer) ? answerer : 0, o, a);
         },
         {});
}

void Cluster::unpaired(const pairing::CallEnded &call) {
  struct Owned {
    pairing::CallEnded call;
    std::string gone_id, left_id;
  };
  auto owned = std::make_shared<Owned>(Owned{call, std::string(call.gone_id), std::string(call.left_id)});
  effect(node_,
         [this, owned] {
           pairing::CallEnded c = owned->call;
           c.gone_id = owned->gone_id;
           c.left_id = owned->left_id;
           c.gone = is_here(c.gone) ? c.gone : 0;
           c.left = is_here(c.left) ? c.left : 0;
           local_.unpaired(c);
         },
         {});
}

void Cluster::resumed(ConnId conn, ConnId partner, std::string_view id) {
  effect(node_, [this, conn, partner, i = std::string(id)] { local_.resumed(conn, is_here(partner) ? partner : 0, i); },
         {});
}

// The partner's node keeps the grace timer: it is the one to tell, and it
// lives on when the node of the connection that went is dead.
void Cluster::start_grace(const std::string &id) {
  auto r = state_->record(id);
  if (!r || r->conn != 0)
    return;
  Where w = where(r->waiting);
  effect(
      w.node, [this, id, token = r->entry.token] { grace_for(id, token); }, frame_grace(r->entry.token, id));
}

void Cluster::cancel_grace(const std::string &id) {
  effect(node_, [this, id] { graces_.erase(id); }, {});
}

void Cluster::grace_for(const std::string &id, const std::string &token) {
  graces_[id] = Grace{token, host_.start_timer(grace_ms_, {}, [this, id, token] {
                        graces_.erase(id);
                        run({id}, [id, token](PairingState &s) {
                          // Only the absence this timer was for: the id may have come back and gone again.
                          if (auto r = s.record(id); r && r->conn == 0 && r->entry.token == token)
                            s.expire(id);
                        });
                      })};
}

// ---- the node ----

void Cluster::links_changed() {
  if (stopping_)
    return;
  bool up = txn_link_ && cmd_link_ && sub_link_ && txn_link_->up() && cmd_link_->up() && sub_link_->up();
  if (up == healthy_)
    return;
  healthy_ = up;
  host_.metric_set(m_up_, up ? 1 : 0);
  report_links();
  if (up) {
    if (settings_.node_name.empty())  // from the first loop turn on, the port is the bound one
      settings_.node_name =
          host_.node_info() ? host_.node_info()->node_id : "duetd:" + std::to_string(host_.listen_port());
    host_.set_health(false, nullptr);
    host_.log(DUET_LOG_INFO, "cluster: node " + settings_.node_name + " joined through " + settings_.target.describe() +
                                 " (channel " + channel(node_) + ")");
    rejoin();
  } else {
    host_.set_health(true, ("Redis at " + settings_.target.describe() +
                            " is unreachable: calls between nodes wait, calls on this node work")
                               .c_str());
  }
  pump();
}

// After a start or a loss: say we live, write back the places of our
// connections that Redis lacks (it may have restarted empty), then check
// every call with a side here against what Redis holds.
void Cluster::rejoin() {
  cmd_link_->command({"SET", channel(node_), settings_.node_name, "PX", kNodeTtlMs}, [](const redisReply *) {});
  std::vector<std::string> ours;
  state_->for_each_place([&](const std::string &id, ConnId conn, const PairingState::Entry &, ConnId waiting) {
    if ((conn && is_here(conn)) || (conn == 0 && is_here(waiting)))
      ours.push_back(id);
  });
  for (const auto &id : ours) {
    std::string value = encode(Stored{versions_[id] + 1, to_place(state_->record(id))});
    cmd_link_->command({"SET", key(id), value, "NX"}, [](const redisReply *) {});
  }
  for (const auto &id : ours)
    run({id}, [](PairingState &) {});
}

void Cluster::report_links() {
  if (!txn_link_ || !cmd_link_ || !sub_link_)
    return;
  host_.metric_set(m_rtt_, static_cast<std::int64_t>(cmd_link_->rtt_us()));
  std::uint64_t reconnects = txn_link_->reconnects() + cmd_link_->reconnects() + sub_link_->reconnects();
  host_.metric_add(m_reconnects_, static_cast<std::int64_t>(reconnects - reported_reconnects_));
  reported_reconnects_ = reconnects;
}

void Cluster::tick() {
  report_links();
  if (!healthy_)
    return;
  cmd_link_->command({"SET", channel(node_), settings_.node_name, "PX", kNodeTtlMs}, [](const redisReply *) {});
  // Which nodes do our calls touch? One MGET says which of them live.
  std::map<std::uint32_t, std::set<std::string>> ids_by_node;
  std::set<ConnId> known;
  state_->for_each_place([&](const std::string &id, ConnId conn, const PairingState::Entry &e, ConnId waiting) {
    for (ConnId c : {conn, e.partner, waiting}) {
      known.insert(c);
      if (c && !is_here(c))
        ids_by_node[where(c).node].insert(id);
    }
  });
  for (auto it = stand_in_of_.begin(); it != stand_in_of_.end();) {  // forget stand-ins nothing names
    if (!known.count(it->first) && !state_->entry_of(it->first)) {
      stand_ins_.erase(it->second);
      it = stand_in_of_.erase(it);
    } else {
      ++it;
    }
  }
  if (ids_by_node.empty())
    return;
  std::vector<std::string> keys;
  keys.reserve(ids_by_node.size());
  for (const auto &[n, ids] : ids_by_node)
    keys.push_back(channel(n));
  cmd_link_->command("MGET", keys, [this, ids_by_node](const redisReply *r) {
    if (stopping_ || !r || r->type != REDIS_REPLY_ARRAY || r->elements != ids_by_node.size())
      return;
    std::size_t i = 0;
    for (const auto &[n, ids] : ids_by_node)
      if (r->element[i++]->type == REDIS_REPLY_NIL)
        for (const auto &id : ids)
          run({id}, [](PairingState &) {});  // heal() closes what the dead node held
  });
}

std::size_t Cluster::pairs_here() const {
  std::size_t n = 0;
  state_->for_each_place([&](const std::string &, ConnId conn, const PairingState::Entry &e, ConnId) {
    if (!conn || !is_here(conn))
      return;
    // A pair with both sides here counts once: at its lower connection id.
    bool in_call = e.partner && (!is_here(e.partner) || conn < e.partner);
    if (in_call || !e.away_partner.empty())
      n++;
  });
  return n;
}

void Cluster::on_frame(std::string_view text) {
  auto f = parse_frame(text);
  if (!f) {
    host_.log(DUET_LOG_WARN, "cluster: ignored a malformed message from another node");
    return;
  }
  host_.metric_add(m_received_, 1);
  switch (f->kind) {
  case 'S':
    local_.send(f->conn, f->a);
    break;
  case 'E': {
    std::string code(f->a), message(f->b);
    local_.send_error(f->conn, code.c_str(), message.c_str());
    break;
  }
  case 'X': {
    std::string reason(f->a);
    local_.close(f->conn, f->code, reason.c_str());
    break;
  }
  case 'U':
    update_from(f->a, f->b);
    break;
  case 'G':
    grace_for(std::string(f->b), std::string(f->a));
    break;
  }
}

void Cluster::update_from(std::string_view id_view, std::string_view record) {
  auto stored = decode(record);
  if (!stored)
    return;
  std::string id(id_view);
  auto v = versions_.find(id);
  if (v != versions_.end() && stored->version <= v->second)
    return;  // older than what we hold (frames from two nodes cross)
  versions_[id] = stored->version;
  state_->put_record(id, to_local(stored->place));
}

}  // namespace duet::cluster
