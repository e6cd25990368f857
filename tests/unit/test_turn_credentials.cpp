// Tests for the TURN REST API credentials of the ice-servers plugin
// (plugins/ice-servers/turn_credentials.cpp): username "EXPIRY:ID",
// password base64(HMAC-SHA1(secret, username)), against values computed
// outside duet with the openssl command line.
#include <catch2/catch.hpp>

#include "turn_credentials.hpp"

#include <cstdint>
#include <ctime>
#include <string>

using duet::ice::turn_credentials;
using duet::ice::TurnCredentials;

// Each expected password was computed with:
//   printf '%s' USERNAME | openssl dgst -sha1 -hmac SECRET -binary | base64
// (for the secret with a NUL byte: -mac HMAC -macopt hexkey:6162006364
// instead of -hmac; for the long one SECRET is 100 times 'a').
TEST_CASE("the password is base64 of HMAC-SHA1 of the username under the secret", "[turn_credentials]") {
  TurnCredentials c = turn_credentials("north-star-secret", "alice", 1700000000);
  CHECK(c.username == "1700000000:alice");
  CHECK(c.password == "ZANVpdvVC/ZQx9/5ZfGNc4Drg44=");
}

TEST_CASE("known vectors: empty id, empty secret, a long secret, a secret with a NUL byte", "[turn_credentials]") {
  CHECK(turn_credentials("k", "", 0).username == "0:");
  CHECK(turn_credentials("k", "", 0).password == "/ZNIV9BTp81NcwlbuawL6nV+pvM=");
  CHECK(turn_credentials("", "alice", 1700000000).password == "rqBBD+hnu5lsggfwzdJtEMIA/sc=");
  // Over SHA-1's 64-byte block: HMAC hashes the key first.
  CHECK(turn_credentials(std::string(100, 'a'), "user@example", 86400).password == "WBLpCgthyfz0WSRGfsbBvDKmJx8=");
  // The whole secret counts, not what strlen() would see.
  const std::string with_nul("ab\0cd", 5);
  CHECK(turn_credentials(with_nul, "alice", 1700000000).password == "U0mtCpAV9yPVjlJUbOLH/ReMEU0=");
  CHECK(turn_credentials("ab", "alice", 1700000000).password == "NgsbMUqhxs2jhe+6EYkZPyZfu5w=");
}

TEST_CASE("the expiry is written as a plain decimal, sign and all", "[turn_credentials]") {
  CHECK(turn_credentials("k", "x", -5).username == "-5:x");
  CHECK(turn_credentials("k", "x", -5).password == "0Z9VsJVlgvHcCNpmgfjhWIv6/98=");
  CHECK(turn_credentials("k", "x", INT64_MAX).username == "9223372036854775807:x");
  CHECK(turn_credentials("k", "x", 2000000000000).username == "2000000000000:x");
}

TEST_CASE("the id is kept as given, colons included", "[turn_credentials]") {
  CHECK(turn_credentials("k", "a:b:c", 10).username == "10:a:b:c");
  CHECK(turn_credentials("k", "caf\xc3\xa9", 10).username == "10:caf\xc3\xa9");
}

TEST_CASE("the password is 28 base64 characters with one pad", "[turn_credentials]") {
  const std::string b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (std::int64_t expiry : {0LL, 1LL, 1700000000LL}) {
    TurnCredentials c = turn_credentials("some secret", "id-" + std::to_string(expiry), expiry);
    INFO("password " << c.password);
    REQUIRE(c.password.size() == 28);
    CHECK(c.password.back() == '=');
    CHECK(c.password.find_first_not_of(b64) == 27);
  }
}

TEST_CASE("secret, id and expiry each change the password", "[turn_credentials]") {
  const std::string base = turn_credentials("secret-one", "alice", 100).password;
  CHECK(turn_credentials("secret-one", "alice", 100).password == base);
  CHECK(turn_credentials("secret-two", "alice", 100).password != base);
  CHECK(turn_credentials("secret-one", "alicf", 100).password != base);
  CHECK(turn_credentials("secret-one", "alice", 101).password != base);
}

TEST_CASE("the clock is Unix seconds", "[turn_credentials]") {
  std::int64_t before = static_cast<std::int64_t>(std::time(nullptr));
  std::int64_t now = duet::ice::unix_now_s();
  std::int64_t after = static_cast<std::int64_t>(std::time(nullptr));
  CHECK(now >= before);
  CHECK(now <= after + 1);
}
