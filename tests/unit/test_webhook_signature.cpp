// Tests for the webhooks' signatures (plugins/webhooks/signature.cpp)
// against the Standard Webhooks convention's own library: every expected
// value here was made by the npm package standardwebhooks 1.0
// (new Webhook(secret).sign(id, new Date(ts * 1000), body)).
#include <catch2/catch.hpp>

#include "webhooks/signature.hpp"

using duet::webhooks::secret_bytes;
using duet::webhooks::sign;

namespace {
const char *const kSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
}

TEST_CASE("signatures are the ones the Standard Webhooks library makes", "[webhooks]") {
  const auto key = secret_bytes(kSecret);
  REQUIRE(key);
  CHECK(key->size() == 24);
  // The convention's own example.
  CHECK(sign(*key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, R"({"test": 2432232314})") ==
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  CHECK(sign(*key, "evt_0000000000000001", 1796648400,
             R"({"type":"call.started","timestamp":"2026-12-07T13:00:00.000Z","data":{"ids":["alice","bob"]}})") ==
        "v1,7/w1LYzrHrUKssbEzjHfSLMhm9+3b9u9+GWpBsYMMxA=");
}

TEST_CASE("a secret is whsec_ and base64 (or the base64 alone) of at least 24 bytes", "[webhooks]") {
  CHECK(secret_bytes("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") == secret_bytes(kSecret));
  CHECK_FALSE(secret_bytes("whsec_"));
  CHECK_FALSE(secret_bytes("whsec_c2hvcnQ="));                               // 5 bytes
  CHECK_FALSE(secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS"));        // not a multiple of 4
  CHECK_FALSE(secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-w"));       // base64url, not base64
  CHECK_FALSE(secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La=aSw"));       // padding inside
  const auto padded = secret_bytes("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==");  // 25 bytes
  REQUIRE(padded);
  CHECK(padded->size() == 25);
}
