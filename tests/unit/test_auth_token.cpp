// Tests for the auth plugin's call tokens (plugins/auth/auth_token.cpp):
// known tokens computed outside duet, expiry, binding to id and peer,
// tampering, malformed input, and the secret's length rule.
#include <catch2/catch.hpp>

#include "independent_b64url.hpp"

#include "auth_token.hpp"

#include <cstdint>
#include <string>

#include <openssl/evp.h>
#include <openssl/hmac.h>

using duet::auth::Check;
using duet::auth::mint;
using duet::auth::verify;

namespace {

const std::string kSecret = "0123456789abcdef";
const std::int64_t kExpiry = 1700000000;

const auto b64url = independent_b64url;

// A token for any payload text, signed as the format says, so that the
// payload parser can be fed well-signed nonsense.
std::string sign_payload(const std::string &secret, const std::string &payload) {
  std::string signed_part = "v1." + b64url(payload);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  REQUIRE(HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
               reinterpret_cast<const unsigned char *>(signed_part.data()), signed_part.size(), digest,
               &len) != nullptr);
  return signed_part + "." + b64url(std::string(reinterpret_cast<char *>(digest), len));
}

}  // namespace

// Computed with the shell, not with duet:
//   P=$(printf '1700000000\nalice\nbob' | base64 -w0 | tr '+/' '-_' | tr -d '=')
//   M=$(printf '%s' "v1.$P" | openssl dgst -sha256 -hmac '0123456789abcdef' -binary |
//       base64 -w0 | tr '+/' '-_' | tr -d '=')
//   echo "v1.$P.$M"
// and the same with printf '1700000000\nalice\n' for the token without a peer.
TEST_CASE("mint gives the token the format defines, byte for byte", "[auth_token]") {
  CHECK(mint(kSecret, "alice", "bob", kExpiry) ==
        "v1.MTcwMDAwMDAwMAphbGljZQpib2I.CunW2L7GqFlJP9OBh0HkTgbDSzixFarDoncMPZZINR0");
  CHECK(mint(kSecret, "alice", "", kExpiry) ==
        "v1.MTcwMDAwMDAwMAphbGljZQo.Qj3GuC7QGC93_8Ieymh75aB6pf2gcib9COodtUviJsU");
  CHECK(sign_payload(kSecret, "1700000000\nalice\nbob") == mint(kSecret, "alice", "bob", kExpiry));
}

TEST_CASE("a token verifies for its id and peer until it expires", "[auth_token]") {
  std::string t = mint(kSecret, "alice", "bob", kExpiry);
  CHECK(verify(kSecret, t, "alice", "bob", 0) == Check::kOk);
  CHECK(verify(kSecret, t, "alice", "bob", kExpiry - 1) == Check::kOk);
  // The expiry itself is already too late.
  CHECK(verify(kSecret, t, "alice", "bob", kExpiry) == Check::kExpired);
  CHECK(verify(kSecret, t, "alice", "bob", kExpiry + 86400) == Check::kExpired);
}

TEST_CASE("a token is bound to its id exactly", "[auth_token]") {
  std::string t = mint(kSecret, "alice", "", kExpiry);
  CHECK(verify(kSecret, t, "alice", "anyone", kExpiry - 1) == Check::kOk);
  CHECK(verify(kSecret, t, "mallory", "", kExpiry - 1) == Check::kWrongId);
  CHECK(verify(kSecret, t, "alic", "", kExpiry - 1) == Check::kWrongId);
  CHECK(verify(kSecret, t, "alice2", "", kExpiry - 1) == Check::kWrongId);
  CHECK(verify(kSecret, t, "Alice", "", kExpiry - 1) == Check::kWrongId);
  CHECK(verify(kSecret, t, "", "", kExpiry - 1) == Check::kWrongId);
}

TEST_CASE("a token with a peer is bound to that peer; one without opens to anyone", "[auth_token]") {
  std::string bound = mint(kSecret, "alice", "bob", kExpiry);
  CHECK(verify(kSecret, bound, "alice", "carol", kExpiry - 1) == Check::kWrongPeer);
  CHECK(verify(kSecret, bound, "alice", "bo", kExpiry - 1) == Check::kWrongPeer);
  CHECK(verify(kSecret, bound, "alice", "", kExpiry - 1) == Check::kWrongPeer);
  std::string open_to_all = mint(kSecret, "alice", "", kExpiry);
  CHECK(verify(kSecret, open_to_all, "alice", "bob", kExpiry - 1) == Check::kOk);
  CHECK(verify(kSecret, open_to_all, "alice", "carol", kExpiry - 1) == Check::kOk);
}

TEST_CASE("an expired token says expired before it says wrong id", "[auth_token]") {
  // The order of the checks is what the plugin reports; the signature comes
  // first of all.
  std::string t = mint(kSecret, "alice", "bob", kExpiry);
  CHECK(verify(kSecret, t, "mallory", "bob", kExpiry) == Check::kExpired);
  CHECK(verify("another secret 16", t, "alice", "bob", kExpiry) == Check::kBadSignature);
}

TEST_CASE("another secret's token is refused", "[auth_token]") {
  std::string t = mint("fedcba9876543210", "alice", "", kExpiry);
  CHECK(verify(kSecret, t, "alice", "", 0) == Check::kBadSignature);
  // One byte more or less of secret is another secret.
  CHECK(verify(kSecret + "x", mint(kSecret, "alice", "", kExpiry), "alice", "", 0) == Check::kBadSignature);
  CHECK(verify(kSecret.substr(1), mint(kSecret, "alice", "", kExpiry), "alice", "", 0) == Check::kBadSignature);
}

TEST_CASE("any change to the payload breaks the signature", "[auth_token]") {
  std::string t = mint(kSecret, "alice", "bob", kExpiry);
  const size_t mac_dot = t.rfind('.');
  // Every single-character change in the payload part.
  for (size_t i = 3; i < mac_dot; i++) {
    std::string changed = t;
    changed[i] = changed[i] == 'A' ? 'B' : 'A';
    INFO("changed at " << i << ": " << changed);
    CHECK(verify(kSecret, changed, "alice", "bob", 0) != Check::kOk);
  }
  // A later expiry, a payload of another token with this one's MAC.
  std::string later = mint(kSecret, "alice", "bob", kExpiry + 1000);
  std::string spliced = later.substr(0, later.rfind('.')) + t.substr(mac_dot);
  CHECK(verify(kSecret, spliced, "alice", "bob", 0) == Check::kBadSignature);
  // The payload with the peer cut off, under the old MAC.
  std::string unbound = sign_payload("not the secret!!", "1700000000\nalice\n");
  std::string cut = unbound.substr(0, unbound.rfind('.')) + t.substr(mac_dot);
  CHECK(verify(kSecret, cut, "alice", "carol", 0) == Check::kBadSignature);
}

TEST_CASE("any change to the MAC is refused", "[auth_token]") {
  std::string t = mint(kSecret, "alice", "bob", kExpiry);
  const size_t mac_dot = t.rfind('.');
  for (size_t i = mac_dot + 1; i < t.size(); i++) {
    std::string changed = t;
    changed[i] = changed[i] == 'A' ? 'B' : 'A';
    INFO("changed at " << i << ": " << changed);
    CHECK(verify(kSecret, changed, "alice", "bob", 0) != Check::kOk);
  }
  CHECK(verify(kSecret, t.substr(0, t.size() - 1), "alice", "bob", 0) != Check::kOk);
  CHECK(verify(kSecret, t + "A", "alice", "bob", 0) != Check::kOk);
  CHECK(verify(kSecret, t + "AA", "alice", "bob", 0) != Check::kOk);
}

// The MAC is 32 bytes: 43 base64url characters carry 258 bits, so the last
// one has 2 spare bits. Before the fix they were ignored and each token had
// three other spellings that verified too.
TEST_CASE("the MAC's spare bits must be zero: a token has one spelling", "[auth_token]") {
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (const std::string peer : {"bob", ""}) {
    std::string t = mint(kSecret, "alice", peer, kExpiry);
    REQUIRE(t.size() - t.rfind('.') - 1 == 43);
    size_t last = alphabet.find(t.back());
    REQUIRE(last != std::string::npos);
    REQUIRE((last & 3) == 0);
    for (size_t spare = 1; spare < 4; spare++) {
      std::string variant = t;
      variant.back() = alphabet[last | spare];
      INFO("variant " << variant);
      CHECK(verify(kSecret, variant, "alice", peer, 0) != Check::kOk);
    }
  }
}

TEST_CASE("a payload whose encoding is not canonical is refused even when signed", "[auth_token]") {
  // "MTcwMDAwMDAwMAphbGljZQpib2I" ends in 'I' (8 = 001000): its 2 spare bits
  // are zero. 'J' carries the same bytes with a spare bit set.
  std::string canonical = sign_payload(kSecret, "1700000000\nalice\nbob");
  std::string signed_part = canonical.substr(0, canonical.rfind('.'));
  REQUIRE(signed_part.back() == 'I');
  signed_part.back() = 'J';
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
       reinterpret_cast<const unsigned char *>(signed_part.data()), signed_part.size(), digest, &len);
  std::string t = signed_part + "." + b64url(std::string(reinterpret_cast<char *>(digest), len));
  CHECK(verify(kSecret, t, "alice", "bob", 0) == Check::kMalformed);
}

TEST_CASE("malformed tokens are refused as malformed", "[auth_token]") {
  std::string good = mint(kSecret, "alice", "bob", kExpiry);
  std::string mac = good.substr(good.rfind('.'));
  const std::string cases[] = {
      "",
      "v",
      "v1",
      "v1.",
      "v1..",
      "v1.." + mac.substr(1),
      "v2" + good.substr(2),
      "V1" + good.substr(2),
      " " + good,
      "v1.MTcwMDAwMDAwMAphbGljZQpib2I",                                                  // no MAC part
      good.substr(0, good.rfind('.')) + "." + mac.substr(1, 20) + "+" + mac.substr(22),  // standard base64
      good.substr(0, good.rfind('.')) + "." + mac.substr(1, 20) + "/" + mac.substr(22),
      good + "=",  // padding
      good.substr(0, good.rfind('.')) + "." + mac.substr(1, 20) + " " + mac.substr(22),
      good.substr(0, good.rfind('.')) + "." + mac.substr(1, 20) + std::string(1, '\0') + mac.substr(22),
      good + "AA",  // 45 characters: a lone last character (6 bits, no byte)
  };
  for (const std::string &t : cases) {
    INFO("token " << t);
    CHECK(verify(kSecret, t, "alice", "bob", 0) == Check::kMalformed);
  }
}

TEST_CASE("a token over 2048 bytes is refused unread", "[auth_token]") {
  std::string id(1000, 'i');
  std::string peer(1000, 'p');
  std::string t = mint(kSecret, id, peer, kExpiry);
  REQUIRE(t.size() > 2048);
  CHECK(verify(kSecret, t, id, peer, 0) == Check::kMalformed);
  std::string fits = mint(kSecret, std::string(700, 'i'), std::string(700, 'p'), kExpiry);
  REQUIRE(fits.size() <= 2048);
  CHECK(verify(kSecret, fits, std::string(700, 'i'), std::string(700, 'p'), 0) == Check::kOk);
}

TEST_CASE("a signed payload that does not parse is malformed", "[auth_token]") {
  const std::string payloads[] = {
      "",
      "1700000000",
      "1700000000\nalice",        // one separator only
      "\nalice\nbob",             // no expiry
      "17000x0000\nalice\nbob",   // not a number
      "1700000000 \nalice\nbob",  // trailing junk
      "0x65538f00\nalice\nbob",   // hexadecimal
  };
  for (const std::string &p : payloads) {
    INFO("payload " << p);
    CHECK(verify(kSecret, sign_payload(kSecret, p), "alice", "bob", 0) == Check::kMalformed);
  }
}

TEST_CASE("a signed payload with an expiry in the past or negative is expired", "[auth_token]") {
  CHECK(verify(kSecret, sign_payload(kSecret, "0\nalice\nbob"), "alice", "bob", 0) == Check::kExpired);
  CHECK(verify(kSecret, sign_payload(kSecret, "-1\nalice\nbob"), "alice", "bob", 0) == Check::kExpired);
}

TEST_CASE("the id and peer may hold any bytes but newline", "[auth_token]") {
  const std::string id = "caf\xc3\xa9 \"x\".y/z";
  const std::string peer = "peer with spaces";
  std::string t = mint(kSecret, id, peer, kExpiry);
  CHECK(verify(kSecret, t, id, peer, 0) == Check::kOk);
  // A peer holding the separator would be read back as itself: the rest.
  std::string nl = mint(kSecret, "alice", "b\nob", kExpiry);
  CHECK(verify(kSecret, nl, "alice", "b\nob", 0) == Check::kOk);
}

TEST_CASE("a secret needs at least 16 bytes", "[auth_token]") {
  CHECK(!duet::auth::secret_long_enough(""));
  CHECK(!duet::auth::secret_long_enough(std::string(15, 'k')));
  CHECK(duet::auth::secret_long_enough(std::string(16, 'k')));
  CHECK(duet::auth::secret_long_enough(std::string(16, '\0')));
}
