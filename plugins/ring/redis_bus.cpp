#include "redis_bus.hpp"

#include "context.hpp"

#include <utility>

#include <hiredis/hiredis.h>

#include "redis_store.hpp"

namespace duet::ring {

namespace {

constexpr const char *kChannel = "duet:ring:events";

constexpr const char *kExtend = R"(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2]))";

constexpr const char *kRelease = R"(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1]))";

// Drops the lapsed entries, then answers the live ones.
constexpr const char *kOpen = R"(
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1))";

void ignore(const redisReply *) {}

}  // namespace

RedisBus::RedisBus(const duet::Host &host, duet::cluster::RedisLink &commands, const duet::cluster::RedisTarget &target,
                   const Attachments &attached, std::string node)
    : host_(host), commands_(commands), events_(host, target, "ring-events", {}), attached_(attached),
      node_(std::move(node)) {
  events_.subscribe(kChannel, [this](std::string_view json) { deliver(json); });
  events_.start();
  refresh_ = host_.start_timer(kOpenRefresh, kOpenRefresh, [this] { refresh_open(); });
}

std::string RedisBus::key(const char *kind, LineKey line) const {
  return std::string(kRedisPrefix) + kind + ":" + std::to_string(line);
}

// Redis down: this node still hears its own events (its own callers and
// devices stay in step); the others' rings end on their own timers.
void RedisBus::publish(const std::string &json) {
  if (!commands_.command("PUBLISH", {kChannel, json}, ignore))
    deliver(json);
}

void RedisBus::claim(LineKey line, const std::string &holder, std::chrono::milliseconds ttl, Then<bool> then) {
  auto answer = [this, alive = alive_, then](const redisReply *r) {
    if (!*alive)
      return;
    Answer<bool> a;
    if (!r || r->type == REDIS_REPLY_ERROR)
      a.failure = kClusterUnavailable;
    else
      a.value = r->type == REDIS_REPLY_STATUS;  // OK; nil when held
    hand_on(host_, then, a);
  };
  if (!commands_.command("SET", {key("busy", line), holder, "NX", "PX", std::to_string(ttl.count())}, answer))
    answer(nullptr);
}

void RedisBus::extend(LineKey line, const std::string &holder, std::chrono::milliseconds ttl) {
  commands_.command("EVAL", {kExtend, "1", key("busy", line), holder, std::to_string(ttl.count())}, ignore);
}

void RedisBus::release(LineKey line, const std::string &holder) {
  commands_.command("EVAL", {kRelease, "1", key("busy", line), holder}, ignore);
}

void RedisBus::open_devices(LineKey line, Then<std::vector<std::string>> then) {
  auto answer = [this, alive = alive_, then](const redisReply *r) {
    if (!*alive)
      return;
    Answer<std::vector<std::string>> a;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
      a.failure = kClusterUnavailable;
    } else {
      for (std::size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
          a.value.emplace_back(r->element[i]->str, r->element[i]->len);
    }
    hand_on(host_, then, std::move(a));
  };
  if (!commands_.command("EVAL", {kOpen, "1", key("open", line), std::to_string(now_ms())}, answer))
    answer(nullptr);
}

void RedisBus::device_opened(LineKey line, const std::string &device) {
  const std::int64_t until = now_ms() + std::chrono::milliseconds(kOpenLife).count();
  commands_.command("ZADD", {key("open", line), std::to_string(until), device}, ignore);
}

void RedisBus::device_closed(LineKey line, const std::string &device) {
  commands_.command("ZREM", {key("open", line), device}, ignore);
}

void RedisBus::refresh_open() {
  attached_.each([this](ConnId, const Attachments::Entry &e) { device_opened(e.line, e.device); });
}

}  // namespace duet::ring
