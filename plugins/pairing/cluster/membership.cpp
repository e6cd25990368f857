#include "membership.hpp"

#include <random>

#include <hiredis/hiredis.h>

#include "schema.hpp"

namespace duet::cluster {

Membership::Membership(const duet::Host &host, Settings settings, Events events, Meters meters)
    : host_(host), settings_(std::move(settings)), events_(std::move(events)), meters_(meters) {
  std::random_device random;
  do
    node_ = random();
  while (node_ == 0);
}

void Membership::start() {
  host_.set_health(true, "connecting to Redis");
  RedisLink::Events events{[this] { links_changed(); }, [this] { links_changed(); }};
  txn_link_ = std::make_unique<RedisLink>(host_, settings_.target, "transaction", events);
  cmd_link_ = std::make_unique<RedisLink>(host_, settings_.target, "command", events);
  sub_link_ = std::make_unique<RedisLink>(host_, settings_.target, "subscription", events);
  sub_link_->subscribe(schema::node_channel(node_), [this](std::string_view text) { events_.frame(text); });
  txn_link_->start();
  cmd_link_->start();
  sub_link_->start();
  heartbeat_ = host_.start_timer(schema::kHeartbeat, schema::kHeartbeat, [this] { beat(); });
}

void Membership::stop() {
  stopping_ = true;
  txn_link_.reset();
  cmd_link_.reset();
  sub_link_.reset();
}

std::vector<std::string> Membership::alive_command() const {
  return {"SET", schema::node_key(node_), settings_.node_name, "PX", schema::px(schema::kNodeTtl)};
}

void Membership::links_changed() {
  if (stopping_)
    return;
  bool up = txn_link_ && cmd_link_ && sub_link_ && txn_link_->up() && cmd_link_->up() && sub_link_->up();
  if (up == healthy_)
    return;
  healthy_ = up;
  host_.metric_set(meters_.up, up ? 1 : 0);
  report_links();
  if (up)
    joined();
  else
    host_.set_health(true, ("Redis at " + settings_.target.describe() +
                            " is unreachable: calls between nodes wait, calls on this node work")
                               .c_str());
  events_.changed(up);
}

// After a start or a loss: say we live before anything else.
void Membership::joined() {
  if (settings_.node_name.empty())  // from the first loop turn on, the port is the bound one
    settings_.node_name =
        host_.node_info() ? host_.node_info()->node_id : "duetd:" + std::to_string(host_.listen_port());
  host_.set_health(false, nullptr);
  if (joined_before_)
    settle_until_ = std::chrono::steady_clock::now() + schema::kNodeTtl;
  joined_before_ = true;
  host_.log(DUET_LOG_INFO, "cluster: node " + settings_.node_name + " joined through " + settings_.target.describe() +
                               " (channel " + schema::node_channel(node_) + ")");
  auto alive = alive_command();
  cmd_link_->command(std::vector<std::string_view>(alive.begin(), alive.end()), [](const redisReply *) {});
}

void Membership::report_links() {
  if (!txn_link_ || !cmd_link_ || !sub_link_)
    return;
  host_.metric_set(meters_.rtt, static_cast<std::int64_t>(cmd_link_->rtt_us()));
  std::uint64_t reconnects = txn_link_->reconnects() + cmd_link_->reconnects() + sub_link_->reconnects();
  host_.metric_add(meters_.reconnects, static_cast<std::int64_t>(reconnects - reported_reconnects_));
  reported_reconnects_ = reconnects;
}

void Membership::beat() {
  report_links();
  if (!healthy_)
    return;
  auto alive = alive_command();
  cmd_link_->command(std::vector<std::string_view>(alive.begin(), alive.end()), [](const redisReply *) {});
  events_.beat();
}

void Membership::find_dead(const std::set<std::uint32_t> &nodes, std::function<void(std::uint32_t)> dead) {
  if (settling())
    return;
  std::vector<std::string> keys;
  keys.reserve(nodes.size());
  for (auto n : nodes)
    keys.push_back(schema::node_key(n));
  cmd_link_->command("MGET", keys, [this, nodes, dead = std::move(dead)](const redisReply *r) {
    if (stopping_ || !r || r->type != REDIS_REPLY_ARRAY || r->elements != nodes.size())
      return;
    std::size_t i = 0;
    for (auto n : nodes)
      if (r->element[i++]->type == REDIS_REPLY_NIL)
        dead(n);
  });
}

}  // namespace duet::cluster
