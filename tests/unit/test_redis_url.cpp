// --cluster's URL forms (plugins/common/redis_link.cpp), sentinel ones
// included; the failover itself is tests/integration/test_sentinel.py's.
#include <catch2/catch.hpp>

#include <string>

#include "common/redis_link.hpp"

using duet::cluster::parse_redis_url;
using duet::cluster::RedisEndpoint;

namespace {
std::string error_of(const char *url) {
  try {
    parse_redis_url(url);
  } catch (const duet::OptionError &e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("redis:// and unix:// keep their forms") {
  auto t = parse_redis_url("redis://:pw@10.0.0.1:6380/2");
  CHECK(t.host == "10.0.0.1");
  CHECK(t.port == 6380);
  CHECK(t.password == "pw");
  CHECK(t.db == 2);
  CHECK_FALSE(t.via_sentinels());
  CHECK(t.describe() == "redis://10.0.0.1:6380/2");
  CHECK(parse_redis_url("redis://[::1]:7000").describe() == "redis://[::1]:7000");
  CHECK(parse_redis_url("unix:///run/redis.sock").unix_path == "/run/redis.sock");
}

TEST_CASE("redis-sentinel:// names sentinels, the master's name and a database") {
  auto t = parse_redis_url("redis-sentinel://:pw@10.0.0.1:26380,[::1],sentinel.lan:26381/mymaster/3");
  REQUIRE(t.sentinels.size() == 3);
  CHECK(t.sentinels[0] == RedisEndpoint{"10.0.0.1", 26380});
  CHECK(t.sentinels[1] == RedisEndpoint{"::1", 26379});  // the sentinels' default port
  CHECK(t.sentinels[2] == RedisEndpoint{"sentinel.lan", 26381});
  CHECK(t.master_name == "mymaster");
  CHECK(t.password == "pw");  // the master's: the sentinels' comes from its own file
  CHECK(t.db == 3);
  CHECK(t.host.empty());
  CHECK(t.via_sentinels());
  CHECK(t.describe() == "redis-sentinel://10.0.0.1:26380,[::1]:26379,sentinel.lan:26381/mymaster/3");
  CHECK(parse_redis_url("redis-sentinel://127.0.0.1/m").db == 0);
}

TEST_CASE("a bad redis-sentinel:// URL says what is wrong") {
  CHECK_THAT(error_of("redis-sentinel://127.0.0.1:26379"), Catch::Contains("no master name"));
  CHECK_THAT(error_of("redis-sentinel://127.0.0.1:26379/"), Catch::Contains("no master name"));
  CHECK_THAT(error_of("redis-sentinel:///m"), Catch::Contains("no sentinel"));
  CHECK_THAT(error_of("redis-sentinel://a:1,,b:2/m"), Catch::Contains("no host"));
  CHECK_THAT(error_of("redis-sentinel://a:1,/m"), Catch::Contains("empty sentinel"));
  CHECK_THAT(error_of("redis-sentinel://a:0/m"), Catch::Contains("1-65535"));
  CHECK_THAT(error_of("redis-sentinel://a:x/m"), Catch::Contains("port must be a number"));
  CHECK_THAT(error_of("redis-sentinel://a/m/x"), Catch::Contains("database must be a number"));
  CHECK_THAT(error_of("rediss://a/m"), Catch::Contains("unknown scheme"));
}
