#include "redis_store.hpp"

#include "context.hpp"

#include <string_view>
#include <utility>

#include <hiredis/hiredis.h>

#include "wire.hpp"

namespace duet::ring {

namespace {

// ARGV[1] is the key prefix in every script.
constexpr const char *kCreate = R"(
local p = ARGV[1]
if tonumber(redis.call('GET', p..'count') or '0') >= tonumber(ARGV[2]) then return 0 end
local k = redis.call('INCR', p..'next')
redis.call('INCR', p..'count')
redis.call('HSET', p..'line:'..k, 'id', ARGV[3], 'name', ARGV[4])
redis.call('SET', p..'lineid:'..ARGV[3], k)
redis.call('HSET', p..'dev:'..ARGV[5], 'line', k, 'hash', ARGV[6], 'label', ARGV[7])
redis.call('ZADD', p..'devs:'..k, ARGV[8], ARGV[5])
return k)";

constexpr const char *kDevice = R"(
return redis.call('HMGET', ARGV[1]..'dev:'..ARGV[2], 'line', 'hash'))";

constexpr const char *kLine = R"(
local v = redis.call('HMGET', ARGV[1]..'line:'..ARGV[2], 'id', 'name')
if not v[1] then return {} end
return {ARGV[2], v[1], v[2]})";

constexpr const char *kLineById = R"(
local k = redis.call('GET', ARGV[1]..'lineid:'..ARGV[2])
if not k then return {} end
local v = redis.call('HMGET', ARGV[1]..'line:'..k, 'id', 'name')
if not v[1] then return {} end
return {k, v[1], v[2]})";

constexpr const char *kState = R"(
local p, k = ARGV[1], ARGV[2]
local v = redis.call('HMGET', p..'line:'..k, 'id', 'name')
if not v[1] then return {} end
local devices = {}
for _, d in ipairs(redis.call('ZRANGE', p..'devs:'..k, 0, -1)) do
  devices[#devices + 1] = d
  devices[#devices + 1] = redis.call('HGET', p..'dev:'..d, 'label') or 'device'
end
return {v[1], v[2], devices, redis.call('LRANGE', p..'missed:'..k, 0, tonumber(ARGV[3]) - 1)})";

constexpr const char *kRename = R"(
if redis.call('EXISTS', ARGV[1]..'line:'..ARGV[2]) == 0 then return 0 end
redis.call('HSET', ARGV[1]..'line:'..ARGV[2], 'name', ARGV[3])
return 1)";

constexpr const char *kRelink = R"(
local p, k = ARGV[1], ARGV[2]
local old = redis.call('HGET', p..'line:'..k, 'id')
if not old then return 0 end
redis.call('DEL', p..'lineid:'..old)
redis.call('SET', p..'lineid:'..ARGV[3], k)
redis.call('HSET', p..'line:'..k, 'id', ARGV[3])
return 1)";

constexpr const char *kInvite = R"(
if redis.call('EXISTS', ARGV[1]..'line:'..ARGV[2]) == 0 then return 0 end
redis.call('SET', ARGV[1]..'invite:'..ARGV[3], ARGV[2], 'PX', ARGV[4])
return 1)";

// {0}: no such invite; {2, K}: the line is full (the invite stays); {1, K}.
constexpr const char *kJoin = R"(
local p = ARGV[1]
local k = redis.call('GET', p..'invite:'..ARGV[2])
if not k or redis.call('EXISTS', p..'line:'..k) == 0 then return {0, 0} end
if redis.call('ZCARD', p..'devs:'..k) >= tonumber(ARGV[6]) then return {2, tonumber(k)} end
redis.call('DEL', p..'invite:'..ARGV[2])
redis.call('HSET', p..'dev:'..ARGV[3], 'line', k, 'hash', ARGV[4], 'label', ARGV[5])
redis.call('ZADD', p..'devs:'..k, ARGV[7], ARGV[3])
return {1, tonumber(k)})";

// {removed, line gone}
constexpr const char *kRemoveDevice = R"(
local p, k, d = ARGV[1], ARGV[2], ARGV[3]
if redis.call('ZREM', p..'devs:'..k, d) == 0 then return {0, 0} end
redis.call('DEL', p..'dev:'..d, p..'sub:'..d)
redis.call('ZREM', p..'open:'..k, d)
if redis.call('ZCARD', p..'devs:'..k) > 0 then return {1, 0} end
local id = redis.call('HGET', p..'line:'..k, 'id')
if id then redis.call('DEL', p..'lineid:'..id) end
redis.call('DEL', p..'line:'..k, p..'missed:'..k, p..'devs:'..k, p..'open:'..k)
redis.call('DECR', p..'count')
return {1, 1})";

constexpr const char *kAddMissed = R"(
if redis.call('EXISTS', ARGV[1]..'line:'..ARGV[2]) == 0 then return 0 end
redis.call('LPUSH', ARGV[1]..'missed:'..ARGV[2], ARGV[3])
redis.call('LTRIM', ARGV[1]..'missed:'..ARGV[2], 0, tonumber(ARGV[4]) - 1)
return 1)";

constexpr const char *kSetSubscription = R"(
if redis.call('EXISTS', ARGV[1]..'dev:'..ARGV[2]) == 0 then return 0 end
redis.call('HSET', ARGV[1]..'sub:'..ARGV[2], 'endpoint', ARGV[3], 'p256dh', ARGV[4], 'auth', ARGV[5])
return 1)";

constexpr const char *kRemoveSubscription = R"(
local key = ARGV[1]..'sub:'..ARGV[2]
if ARGV[3] ~= '' and redis.call('HGET', key, 'endpoint') ~= ARGV[3] then return 0 end
return redis.call('DEL', key))";

constexpr const char *kSubscriptions = R"(
local p, out = ARGV[1], {}
for _, d in ipairs(redis.call('ZRANGE', p..'devs:'..ARGV[2], 0, -1)) do
  local s = redis.call('HMGET', p..'sub:'..d, 'endpoint', 'p256dh', 'auth')
  if s[1] then
    out[#out + 1] = d
    out[#out + 1] = s[1]
    out[#out + 1] = s[2]
    out[#out + 1] = s[3]
  end
end
return out)";

std::string text(const redisReply *r) {
  return r && r->type == REDIS_REPLY_STRING ? std::string(r->str, r->len) : std::string();
}

std::optional<std::int64_t> number(const redisReply *r) {
  if (r && r->type == REDIS_REPLY_INTEGER)
    return r->integer;
  if (r && r->type == REDIS_REPLY_STRING) {
    try {
      return std::stoll(std::string(r->str, r->len));
    } catch (const std::exception &) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

bool is_array(const redisReply *r, std::size_t at_least = 0) {
  return r && r->type == REDIS_REPLY_ARRAY && r->elements >= at_least;
}

// {K, id, name} or {}.
std::optional<std::optional<Line>> read_line(const redisReply *r) {
  if (!is_array(r))
    return std::nullopt;
  if (r->elements == 0)
    return std::optional<Line>();
  const auto key = number(r->element[0]);
  if (r->elements < 3 || !key)
    return std::nullopt;
  return std::optional<Line>(Line{*key, text(r->element[1]), text(r->element[2])});
}

std::optional<bool> read_flag(const redisReply *r) {
  const auto n = number(r);
  return n ? std::optional<bool>(*n != 0) : std::nullopt;
}

}  // namespace

template <class T, class Read>
void RedisLines::eval(const char *script, std::vector<std::string> args, Then<T> then, Read read) {
  args.insert(args.begin(), {script, "0", kRedisPrefix});
  auto answer = [this, alive = alive_, then, read](const redisReply *r) {
    if (!*alive)
      return;
    Answer<T> a;
    if (!r) {
      a.failure = kClusterUnavailable;
    } else if (r->type == REDIS_REPLY_ERROR) {
      const std::string_view why(r->str, r->len);
      host_.log(DUET_LOG_ERROR, "ring: Redis refused a command: " + std::string(why));
      // A replica, a master that lost its quorum, one still loading: wait.
      const bool passing =
          why.rfind("READONLY", 0) == 0 || why.rfind("MASTERDOWN", 0) == 0 || why.rfind("LOADING", 0) == 0;
      a.failure = passing ? kClusterUnavailable : kStoreFailed;
    } else if (std::optional<T> value = read(r)) {
      a.value = std::move(*value);
    } else {
      host_.log(DUET_LOG_ERROR, "ring: an unexpected reply from Redis");
      a.failure = kStoreFailed;
    }
    hand_on(host_, then, std::move(a));
  };
  if (!link_.command("EVAL", args, answer))
    answer(nullptr);
}

void RedisLines::create_line(const std::string &id, const std::string &name, const Device &device,
                             const std::string &secret_hash, std::int64_t max_lines, Then<std::optional<Line>> then) {
  eval(kCreate, {std::to_string(max_lines), id, name, device.id, secret_hash, device.label, std::to_string(now_ms())},
       std::move(then), [id, name](const redisReply *r) -> std::optional<std::optional<Line>> {
         const auto key = number(r);
         if (!key)
           return std::nullopt;
         if (*key == 0)
           return std::optional<Line>();
         return std::optional<Line>(Line{*key, id, name});
       });
}

void RedisLines::device(const std::string &device_id, Then<std::optional<DeviceRecord>> then) {
  eval(kDevice, {device_id}, std::move(then), [](const redisReply *r) -> std::optional<std::optional<DeviceRecord>> {
    if (!is_array(r, 2))
      return std::nullopt;
    const auto line = number(r->element[0]);
    if (!line)
      return std::optional<DeviceRecord>();
    return std::optional<DeviceRecord>(DeviceRecord{*line, text(r->element[1])});
  });
}

void RedisLines::line(LineKey key, Then<std::optional<Line>> then) {
  eval(kLine, {std::to_string(key)}, std::move(then), read_line);
}

void RedisLines::line_by_id(const std::string &id, Then<std::optional<Line>> then) {
  eval(kLineById, {id}, std::move(then), read_line);
}

void RedisLines::state(LineKey key, Then<std::optional<LineState>> then) {
  eval(kState, {std::to_string(key), std::to_string(kMissedKept)}, std::move(then),
       [key](const redisReply *r) -> std::optional<std::optional<LineState>> {
         if (!is_array(r))
           return std::nullopt;
         if (r->elements == 0)
           return std::optional<LineState>();
         if (r->elements < 4 || !is_array(r->element[2]) || !is_array(r->element[3]))
           return std::nullopt;
         LineState s;
         s.line = {key, text(r->element[0]), text(r->element[1])};
         const redisReply *devices = r->element[2];
         for (std::size_t i = 0; i + 1 < devices->elements; i += 2)
           s.devices.push_back({text(devices->element[i]), text(devices->element[i + 1])});
         const redisReply *missed = r->element[3];
         for (std::size_t i = 0; i < missed->elements; i++) {
           rapidjson::Document m;
           const std::string json = text(missed->element[i]);
           m.Parse(json.data(), json.size());
           s.missed.push_back({string_member(m, "caller").value_or(std::string()), int64_member(m, "at").value_or(0)});
         }
         return std::optional<LineState>(std::move(s));
       });
}

void RedisLines::rename(LineKey key, const std::string &name, Done then) {
  eval(kRename, {std::to_string(key), name}, std::move(then), read_flag);
}

void RedisLines::relink(LineKey key, const std::string &new_id, Done then) {
  eval(kRelink, {std::to_string(key), new_id}, std::move(then), read_flag);
}

void RedisLines::add_invite(LineKey key, const std::string &code_hash, std::int64_t life_ms, Done then) {
  eval(kInvite, {std::to_string(key), code_hash, std::to_string(life_ms)}, std::move(then), read_flag);
}

void RedisLines::join(const std::string &code_hash, const Device &device, const std::string &secret_hash,
                      std::size_t max_devices, Then<Joined> then) {
  eval(kJoin, {code_hash, device.id, secret_hash, device.label, std::to_string(max_devices), std::to_string(now_ms())},
       std::move(then), [](const redisReply *r) -> std::optional<Joined> {
         if (!is_array(r, 2))
           return std::nullopt;
         const auto result = number(r->element[0]), line = number(r->element[1]);
         if (!result || !line)
           return std::nullopt;
         const JoinResult kinds[] = {JoinResult::code_invalid, JoinResult::joined, JoinResult::line_full};
         if (*result < 0 || *result > 2)
           return std::nullopt;
         return Joined{kinds[*result], *line};
       });
}

void RedisLines::remove_device(LineKey key, const std::string &device_id, Then<Removal> then) {
  eval(kRemoveDevice, {std::to_string(key), device_id}, std::move(then),
       [](const redisReply *r) -> std::optional<Removal> {
         if (!is_array(r, 2))
           return std::nullopt;
         const auto removed = number(r->element[0]), gone = number(r->element[1]);
         if (!removed || !gone)
           return std::nullopt;
         return Removal{*removed != 0, *gone != 0};
       });
}

void RedisLines::add_missed(LineKey key, const std::string &caller, std::int64_t at_ms, Done then) {
  const std::string json = object([&](Writer &w) {
    put(w, "caller", caller);
    put(w, "at", at_ms);
  });
  eval(kAddMissed, {std::to_string(key), json, std::to_string(kMissedKept)}, std::move(then), read_flag);
}

void RedisLines::set_subscription(const Subscription &sub, Done then) {
  eval(kSetSubscription, {sub.device, sub.endpoint, sub.p256dh, sub.auth}, std::move(then), read_flag);
}

void RedisLines::remove_subscription(const std::string &device, const std::string &endpoint, Done then) {
  eval(kRemoveSubscription, {device, endpoint}, std::move(then), read_flag);
}

void RedisLines::subscriptions(LineKey key, Then<std::vector<Subscription>> then) {
  eval(kSubscriptions, {std::to_string(key)}, std::move(then),
       [](const redisReply *r) -> std::optional<std::vector<Subscription>> {
         if (!is_array(r))
           return std::nullopt;
         std::vector<Subscription> subs;
         for (std::size_t i = 0; i + 3 < r->elements; i += 4)
           subs.push_back(
               {text(r->element[i]), text(r->element[i + 1]), text(r->element[i + 2]), text(r->element[i + 3])});
         return subs;
       });
}

}  // namespace duet::ring
