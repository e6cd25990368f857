#include "redis_sentinel.hpp"

#include <charconv>
#include <sstream>

#include <hiredis/hiredis.h>

namespace duet::cluster {

namespace {

// SENTINEL get-master-addr-by-name's answer: [ip, port], or nil for a name
// the sentinel does not monitor.
std::optional<RedisEndpoint> endpoint_of(const redisReply *r) {
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
      r->element[1]->type != REDIS_REPLY_STRING)
    return std::nullopt;
  RedisEndpoint e;
  e.host.assign(r->element[0]->str, r->element[0]->len);
  const char *p = r->element[1]->str, *end = p + r->element[1]->len;
  auto [stop, ec] = std::from_chars(p, end, e.port);
  if (ec != std::errc() || stop != end || e.port < 1 || e.port > 65535 || e.host.empty())
    return std::nullopt;
  return e;
}

RedisTarget sentinel_target(const RedisEndpoint &at, const std::string &password) {
  RedisTarget t;
  t.host = at.host;
  t.port = at.port;
  t.password = password;
  return t;
}

}  // namespace

Sentinels::Sentinels(const duet::Host &host, const RedisTarget &target)
    : host_(host), master_name_(target.master_name), describe_(target.describe()) {
  for (const RedisEndpoint &at : target.sentinels) {
    auto s = std::make_unique<Sentinel>();
    Sentinel *raw = s.get();
    RedisTarget t = sentinel_target(at, target.sentinel_password);
    s->query =
        std::make_unique<RedisLink>(host_, t, "sentinel-query", RedisLink::Events{[this, raw] { ask(*raw); }, {}});
    s->announcements = std::make_unique<RedisLink>(host_, t, "sentinel-announcements", RedisLink::Events{});
    // "+switch-master NAME OLD_IP OLD_PORT NEW_IP NEW_PORT", from every
    // sentinel as it takes the new configuration on.
    s->announcements->subscribe("+switch-master", [this, raw](std::string_view text) {
      std::istringstream in{std::string(text)};
      std::string name, old_ip, old_port, ip;
      int port = 0;
      if (in >> name >> old_ip >> old_port >> ip >> port && name == master_name_ && port > 0 && port < 65536)
        heard(*raw, RedisEndpoint{ip, port}, "+switch-master");
    });
    sentinels_.push_back(std::move(s));
  }
  for (auto &s : sentinels_) {
    s->query->start();
    s->announcements->start();
  }
}

Sentinels::~Sentinels() {
  listeners_.clear();
  sentinels_.clear();  // pending answers run with nullptr and find nobody
}

void Sentinels::refresh() {
  for (auto &s : sentinels_)
    if (s->query->up())
      ask(*s);
}

void Sentinels::ask(Sentinel &s) {
  s.query->command({"SENTINEL", "get-master-addr-by-name", master_name_}, [this, &s](const redisReply *r) {
    if (!r)
      return;  // the link went (or we are being destroyed)
    if (auto master = endpoint_of(r))
      heard(s, *master, "asked");
    else if (r->type == REDIS_REPLY_NIL)
      host_.log(DUET_LOG_WARN, "cluster: a sentinel of " + describe_ + " does not monitor a master named " +
                                   master_name_ + " (check the name in --cluster)");
  });
}

void Sentinels::heard(Sentinel &s, RedisEndpoint master, const char *how) {
  s.names = std::move(master);
  s.said_at = ++answers_;
  choose(how);
}

// During a failover sentinels disagree for a moment: follow the most of
// them, and among equals the latest to speak. A link checks ROLE anyway.
void Sentinels::choose(const char *how) {
  std::map<std::pair<std::string, int>, std::pair<int, std::uint64_t>> votes;
  for (const auto &s : sentinels_)
    if (s->names) {
      auto &v = votes[{s->names->host, s->names->port}];
      v.first++;
      v.second = std::max(v.second, s->said_at);
    }
  std::optional<RedisEndpoint> best;
  std::pair<int, std::uint64_t> best_vote{0, 0};
  for (const auto &[at, vote] : votes)
    if (vote > best_vote) {
      best_vote = vote;
      best = RedisEndpoint{at.first, at.second};
    }
  if (!best || best == master_)
    return;
  host_.log(DUET_LOG_INFO, "cluster: the sentinels name " + best->describe() + " as master " + master_name_ +
                               (master_ ? " (was " + master_->describe() + ", " + how + ")" : std::string()));
  master_ = best;
  // A listener may drop its link, which asks again: copy first.
  std::vector<std::function<void()>> tell;
  for (const auto &[id, fn] : listeners_)
    tell.push_back(fn);
  for (const auto &fn : tell)
    fn();
}

std::uint64_t Sentinels::listen(std::function<void()> on_change) {
  listeners_[next_listener_] = std::move(on_change);
  return next_listener_++;
}

void Sentinels::unlisten(std::uint64_t id) { listeners_.erase(id); }

std::optional<RedisEndpoint> ask_sentinels_now(const RedisTarget &target, std::string &why) {
  const timeval timeout{2, 0};
  for (const RedisEndpoint &at : target.sentinels) {
    std::unique_ptr<redisContext, decltype(&redisFree)> c(redisConnectWithTimeout(at.host.c_str(), at.port, timeout),
                                                          &redisFree);
    if (!c || c->err) {
      why = at.describe() + ": " + (c ? c->errstr : "out of memory");
      continue;
    }
    redisSetTimeout(c.get(), timeout);
    auto run = [&c](const std::vector<std::string> &args) {
      std::vector<const char *> argv;
      std::vector<std::size_t> lens;
      for (const std::string &a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
      }
      return std::unique_ptr<redisReply, decltype(&freeReplyObject)>(
          static_cast<redisReply *>(redisCommandArgv(c.get(), static_cast<int>(argv.size()), argv.data(), lens.data())),
          &freeReplyObject);
    };
    if (!target.sentinel_password.empty()) {
      auto r = run({"AUTH", target.sentinel_password});
      if (!r || r->type == REDIS_REPLY_ERROR) {
        why = at.describe() + ": the sentinel refused AUTH";
        continue;
      }
    }
    auto r = run({"SENTINEL", "get-master-addr-by-name", target.master_name});
    if (auto master = endpoint_of(r.get()))
      return master;
    why = at.describe() + (r ? ": no master named " + target.master_name : ": " + std::string(c->errstr));
  }
  return std::nullopt;
}

}  // namespace duet::cluster
