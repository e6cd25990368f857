#include "transactions.hpp"

#include <algorithm>
#include <memory>

#include <hiredis/hiredis.h>

#include "healing.hpp"
#include "schema.hpp"

namespace duet::cluster {

using pairing::ConnId;

namespace {
constexpr int kMaxAttempts = 50;
constexpr int kMaxRounds = 4;  // of MGET, following the ids places name
void ignore(const redisReply *) {}
}  // namespace

void Transactions::run(std::vector<std::string> ids, Body body, ConnId closing) {
  if (closing)
    closing_.insert(closing);
  ops_.push_back(Op{std::move(ids), std::move(body), 0, closing});
  pump();
}

void Transactions::stop() {
  stopping_ = true;
  ops_.clear();
}

bool Transactions::newer(const std::string &id, std::uint64_t version) {
  auto v = versions_.find(id);
  if (v != versions_.end() && version <= v->second.version)
    return false;
  set_version(id, version);
  return true;
}

void Transactions::forget_old_versions() {
  const auto old = std::chrono::steady_clock::now() - schema::kTombstone;
  for (auto v = versions_.begin(); v != versions_.end();)
    if (v->second.seen < old && !state_.record(v->first))
      v = versions_.erase(v);
    else
      ++v;
}

void Transactions::pump() {
  if (busy_ || stopping_)
    return;
  if (!membership_.healthy()) {
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

void Transactions::pop_front() {
  if (ConnId c = ops_.front().closing) {
    closing_.erase(c);
    told_replaced_.erase(c);
  }
  ops_.pop_front();
}

void Transactions::run_alone(Op &op) {
  try {
    op.body(state_);
  } catch (const std::exception &e) {
    host_.log(DUET_LOG_ERROR, std::string("cluster: a pairing rule failed: ") + e.what());
  }
}

// 1. WATCH and MGET the ids, then the ids their places name.
void Transactions::load(std::vector<std::string> ids, int round) {
  std::vector<std::string> keys;
  keys.reserve(ids.size());
  for (const auto &id : ids)
    keys.push_back(schema::id_key(id));
  RedisLink &link = membership_.transactions();
  link.command("WATCH", keys, ignore);
  bool sent =
      link.command("MGET", keys, [this, ids = std::move(ids), round](const redisReply *r) { loaded(ids, r, round); });
  if (!sent) {
    busy_ = false;  // the link went: the op waits at the front, run alone or again
    pump();
  }
}

void Transactions::loaded(const std::vector<std::string> &ids, const redisReply *r, int round) {
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
  auto wanted = [&](const std::string &id) {
    return !id.empty() && !loaded_.count(id) && std::find(ids.begin(), ids.end(), id) == ids.end() &&
           std::find(more.begin(), more.end(), id) == more.end();
  };
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
        if (wanted(*next))
          more.push_back(*next);
    loaded_[ids[i]] = std::move(l);
  }
  if (!more.empty() && round + 1 < kMaxRounds)
    load(std::move(more), round + 1);
  else
    check_nodes();
}

// 2. MGET the keys of the nodes the places live on: which are dead.
void Transactions::check_nodes() {
  std::set<std::uint32_t> nodes;
  for (const auto &[id, l] : loaded_)
    if (l.place)
      for (const Where *w : {&l.place->conn, &l.place->partner, &l.place->waiting})
        if (*w && w->node != map_.node())
          nodes.insert(w->node);
  if (nodes.empty() || membership_.settling()) {
    apply();
    return;
  }
  std::vector<std::string> keys;
  keys.reserve(nodes.size());
  for (auto n : nodes)
    keys.push_back(schema::node_key(n));
  bool sent = membership_.transactions().command("MGET", keys, [this, nodes](const redisReply *r) {
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

// 3. The places into the copy, heal, the rule; its effects held.
void Transactions::apply() {
  std::vector<std::string> ids;
  effects_.hold();
  for (const auto &[id, l] : loaded_) {
    auto record = map_.to_local(l.place);
    take_place(id, record);  // from Redis: it is what Redis holds, whatever this says
    state_.put_record(id, record);
    set_version(id, l.version);
    ids.push_back(id);
  }
  try {
    if (std::size_t lost = heal(
            state_, ids, [this](ConnId c) { return alive(c); }, effects_, membership_.settling()))
      host_.metric_add(meters_.nodes_lost, static_cast<std::int64_t>(lost));
    ops_.front().body(state_);
  } catch (const std::exception &e) {
    host_.log(DUET_LOG_ERROR, std::string("cluster: a pairing rule failed: ") + e.what());
  }
  held_ = effects_.release();
  commit();
}

// A live connection here whose id Redis now gives to another connection was
// replaced while this node could not hear of it (cut off from Redis, its
// places healed away by the others): it is told, as a takeover on one node
// tells the older connection, and closed. Redis's place stands. One whose
// place the others turned into an absence (node-lost, its partner waiting)
// is closed with 1012, on which the web client resumes with its token.
bool Transactions::take_place(const std::string &id, const std::optional<pairing::PairingState::Record> &now) {
  // Connected all along, the node hears of a takeover from the deciding
  // node itself (its "replaced" and close frames): only after a cut is it
  // this node's to tell.
  if (membership_.healthy() && !membership_.settling())
    return true;
  const auto before = state_.record(id);
  if (!before || before->conn == 0 || !map_.is_here(before->conn) || (now && now->conn == before->conn) ||
      closing_.count(before->conn) || told_replaced_.count(before->conn))
    return true;
  duet_conn_info_t info{};
  if (!host_.conn_info(before->conn, info))
    return true;
  if (!now)
    return false;
  told_replaced_.insert(before->conn);
  if (now->conn == 0) {
    host_.log(DUET_LOG_INFO, "cluster: " + id +
                                 "'s call was given up by the other nodes while this one was cut "
                                 "off from Redis: closing its connection so that it resumes");
    effects_.close(before->conn, 1012, "resume: the cluster lost this connection");
    return true;
  }
  host_.log(DUET_LOG_INFO, "cluster: " + id +
                               " was opened on another node while this one was cut off from Redis: "
                               "its connection here is replaced");
  effects_.send_error(before->conn, "replaced", "A newer connection opened with your id; this one is closed.");
  effects_.close(before->conn, pairing::kCloseReplaced, "replaced by a newer connection");
  return true;
}

bool Transactions::alive(ConnId c) const {
  if (map_.is_here(c)) {
    duet_conn_info_t info{};
    return closing_.count(c) || host_.conn_info(c, info);
  }
  return !dead_nodes_.count(map_.where(c).node);
}

// 4. MULTI, the changed places, the frames, the heartbeat, EXEC.
void Transactions::commit() {
  auto versions = std::make_shared<std::vector<std::pair<std::string, std::uint64_t>>>();
  std::vector<std::vector<std::string>> commands = changes(*versions);
  for (auto &[n, frame] : held_.frames)
    commands.push_back({"PUBLISH", schema::node_channel(n), std::move(frame)});
  commands.push_back(membership_.alive_command());
  RedisLink &link = membership_.transactions();
  link.command({"MULTI"}, ignore);
  for (const auto &c : commands)
    link.command(std::vector<std::string_view>(c.begin(), c.end()), ignore);
  bool sent = link.command({"EXEC"}, [this, versions](const redisReply *r) {
    if (stopping_)
      return;
    if (r && r->type == REDIS_REPLY_ARRAY)
      for (const auto &[id, v] : *versions)
        set_version(id, v);
    committed(r);
  });
  if (!sent)
    committed(nullptr);
}

// The SETs of the places the rule changed, and a U frame of each change to
// every other node that holds a copy of it; versions: what they become.
std::vector<std::vector<std::string>>
Transactions::changes(std::vector<std::pair<std::string, std::uint64_t>> &versions) {
  std::vector<std::pair<std::string, std::string>> changed;  // id, value
  std::set<std::uint32_t> told;
  std::vector<std::vector<std::string>> commands;
  for (auto &[id, l] : loaded_) {
    std::optional<Place> now = map_.to_place(state_.record(id));
    if (encode_place(now) == l.body)
      continue;
    std::string value = encode(Stored{l.version + 1, now});
    if (now)
      commands.push_back({"SET", schema::id_key(id), value});
    else
      commands.push_back({"SET", schema::id_key(id), value, "PX", schema::px(schema::kTombstone)});
    for (const std::optional<Place> *p : {&l.place, &now})
      if (*p)
        for (const Where *w : {&(*p)->conn, &(*p)->partner, &(*p)->waiting})
          if (*w && w->node != map_.node())
            told.insert(w->node);
    versions.emplace_back(id, l.version + 1);
    changed.emplace_back(id, std::move(value));
  }
  for (auto n : told)
    for (const auto &[id, value] : changed)
      commands.push_back({"PUBLISH", schema::node_channel(n), frame_update(id, value)});
  return commands;
}

// 5. Landed: the held effects here run, in order. Else: again, or given up.
void Transactions::committed(const redisReply *r) {
  if (stopping_)
    return;
  busy_ = false;
  if (!r || r->type != REDIS_REPLY_ARRAY) {
    failed(r);
    pump();  // without Redis the op now runs alone
    return;
  }
  pop_front();
  auto here = std::move(held_.here);
  held_ = {};
  for (auto &fn : here)
    fn();
  pump();
}

void Transactions::failed(const redisReply *r) {
  restore();
  if (r && r->type == REDIS_REPLY_NIL) {
    host_.metric_add(meters_.conflicts, 1);
    if (++ops_.front().attempts > kMaxAttempts)
      give_up();
  } else if (r) {
    host_.log(DUET_LOG_ERROR, std::string("cluster: Redis refused a transaction: ") +
                                  (r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : "?"));
    pop_front();
  }
}

void Transactions::give_up() {
  host_.log(DUET_LOG_ERROR, "cluster: gave up a pairing decision after " + std::to_string(kMaxAttempts) +
                                " conflicts with other nodes");
  pop_front();
}

void Transactions::restore() {
  for (const auto &[id, l] : loaded_)
    state_.put_record(id, map_.to_local(l.place));
}

}  // namespace duet::cluster
