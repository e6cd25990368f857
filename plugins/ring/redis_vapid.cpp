#include "redis_vapid.hpp"

#include <memory>
#include <vector>

#include <hiredis/hiredis.h>

#include "common/redis_sentinel.hpp"

namespace duet::ring {

namespace {

using Context = std::unique_ptr<redisContext, decltype(&redisFree)>;
using Reply = std::unique_ptr<redisReply, decltype(&freeReplyObject)>;

Reply command(redisContext *c, const std::vector<std::string> &args) {
  std::vector<const char *> argv;
  std::vector<std::size_t> lens;
  for (const std::string &a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return Reply(static_cast<redisReply *>(redisCommandArgv(c, static_cast<int>(args.size()), argv.data(), lens.data())),
               &freeReplyObject);
}

// The reply's error in words, or empty when it is none.
std::string failure(redisContext *c, const Reply &r) {
  if (!r)
    return c->errstr[0] ? c->errstr : "no answer";
  return r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : std::string();
}

}  // namespace

std::optional<std::string> cluster_vapid_key(const duet::cluster::RedisTarget &target, const std::string &own_pem,
                                             std::string &why) {
  const timeval timeout{2, 0};
  duet::cluster::RedisEndpoint at{target.host, target.port};
  if (target.via_sentinels()) {  // before the loop runs: asking them now blocks nobody
    auto master = duet::cluster::ask_sentinels_now(target, why);
    if (!master)
      return std::nullopt;
    at = *master;
  }
  Context c(target.unix_path.empty() ? redisConnectWithTimeout(at.host.c_str(), at.port, timeout)
                                     : redisConnectUnixWithTimeout(target.unix_path.c_str(), timeout),
            &redisFree);
  if (!c || c->err) {
    why = c ? c->errstr : "out of memory";
    return std::nullopt;
  }
  redisSetTimeout(c.get(), timeout);
  std::vector<std::vector<std::string>> steps;
  if (!target.password.empty())
    steps.push_back({"AUTH", target.password});
  if (target.db)
    steps.push_back({"SELECT", std::to_string(target.db)});
  steps.push_back({"SET", "duet:ring:vapid-key", own_pem, "NX"});
  for (const auto &step : steps) {
    const Reply r = command(c.get(), step);
    if (why = failure(c.get(), r); !why.empty())
      return std::nullopt;
  }
  const Reply r = command(c.get(), {"GET", "duet:ring:vapid-key"});
  if (why = failure(c.get(), r); !why.empty())
    return std::nullopt;
  if (r->type != REDIS_REPLY_STRING) {
    why = "no key after storing one";
    return std::nullopt;
  }
  return std::string(r->str, r->len);
}

}  // namespace duet::ring
