// Tests for the auth plugin's JWT checks (plugins/auth/jwt.cpp, jwks.cpp):
// HS256 tokens signed here with OpenSSL's HMAC (not with jwt.cpp), every
// refusal the claims and the header lead to, and the JWKS file's rules.
// Tokens from independent JWT libraries (PyJWT, jose) and every algorithm
// are in tests/integration/test_jwt.py.
#include <catch2/catch.hpp>

#include "independent_b64url.hpp"

#include "jwks.hpp"
#include "jwt.hpp"

#include <cstdint>
#include <string>

#include <openssl/evp.h>
#include <openssl/hmac.h>

using duet::auth::Jwks;
using duet::auth::JwtCheck;
using duet::auth::JwtRules;
using duet::auth::verify_jwt;

namespace {

const std::string kSecret = "0123456789abcdef0123";
const std::int64_t kNow = 1700000000;

const auto b64url = independent_b64url;

std::string hs256(const std::string &header, const std::string &claims, const std::string &secret = kSecret) {
  const std::string signed_part = b64url(header) + "." + b64url(claims);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  REQUIRE(HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
               reinterpret_cast<const unsigned char *>(signed_part.data()), signed_part.size(), digest,
               &len) != nullptr);
  return signed_part + "." + b64url(std::string(reinterpret_cast<char *>(digest), len));
}

const std::string kHeader = R"({"alg":"HS256","typ":"JWT"})";

JwtRules with_secret() {
  JwtRules rules;
  rules.secret = kSecret;
  return rules;
}

JwtCheck check(const std::string &token, const JwtRules &rules = with_secret()) {
  return verify_jwt(rules, token, "alice", "bob", kNow);
}

}  // namespace

TEST_CASE("an HS256 token with the right sub, peer and time passes; duet's own mint is one", "[jwt]") {
  CHECK(check(hs256(kHeader, R"({"sub":"alice","peer":"bob","exp":1700000100})")) == JwtCheck::kOk);
  CHECK(check(hs256(kHeader, R"({"sub":"alice","exp":1700000100.5})")) == JwtCheck::kOk);  // no peer: any
  CHECK(check(duet::auth::mint_hs256(kSecret, "alice", "bob", "", kNow, kNow + 60)) == JwtCheck::kOk);
}

TEST_CASE("the signature is checked before the claims, with the secret only for HS256", "[jwt]") {
  std::string token = hs256(kHeader, R"({"sub":"alice","exp":1700000100})");
  token.back() = token.back() == 'A' ? 'B' : 'A';
  CHECK(check(token) == JwtCheck::kBadSignature);
  CHECK(check(hs256(kHeader, R"({"sub":"mallory","exp":1})", "another secret, long enough")) ==
        JwtCheck::kBadSignature);
  const JwtRules nothing;
  CHECK(check(hs256(kHeader, R"({"sub":"alice","exp":1700000100})"), nothing) == JwtCheck::kAlgRefused);
  CHECK(check(hs256(R"({"alg":"none"})", R"({"sub":"alice","exp":1700000100})")) == JwtCheck::kAlgRefused);
  CHECK(check(b64url(R"({"alg":"none"})") + "." + b64url(R"({"sub":"alice","exp":1700000100})") + ".") ==
        JwtCheck::kAlgRefused);
  CHECK(check(hs256(R"({"alg":"HS512"})", R"({"sub":"alice","exp":1700000100})")) == JwtCheck::kAlgRefused);
  CHECK(check(hs256(R"({"alg":"RS256","kid":"k"})", R"({"sub":"alice","exp":1700000100})")) ==
        JwtCheck::kAlgRefused);  // no JWKS configured
  CHECK(check(hs256(R"({"alg":"HS256","crit":["b64"]})", R"({"sub":"alice","exp":1700000100})")) ==
        JwtCheck::kMalformed);
}

TEST_CASE("exp and nbf within the clock skew, aud and iss when configured, sub and peer", "[jwt]") {
  CHECK(check(hs256(kHeader, R"({"sub":"alice","exp":1699999941})")) == JwtCheck::kOk);  // 59 s late
  CHECK(check(hs256(kHeader, R"({"sub":"alice","exp":1699999940})")) == JwtCheck::kExpired);
  CHECK(check(hs256(kHeader, R"({"sub":"alice","exp":1700000100,"nbf":1700000060})")) == JwtCheck::kOk);
  CHECK(check(hs256(kHeader, R"({"sub":"alice","exp":1700000100,"nbf":1700000061})")) == JwtCheck::kNotYetValid);
  JwtRules strict = with_secret();
  strict.audience = "https://clinic.example";
  strict.issuer = "booking";
  strict.skew = 0;
  CHECK(check(hs256(kHeader, R"({"sub":"alice","exp":1700000001,"aud":"https://clinic.example","iss":"booking"})"),
              strict) == JwtCheck::kOk);
  CHECK(
      check(hs256(kHeader, R"({"sub":"alice","exp":1700000001,"aud":["x","https://clinic.example"],"iss":"booking"})"),
            strict) == JwtCheck::kOk);
  CHECK(check(hs256(kHeader, R"({"sub":"alice","exp":1700000000,"aud":"https://clinic.example","iss":"booking"})"),
              strict) == JwtCheck::kExpired);
  CHECK(check(hs256(kHeader, R"({"sub":"alice","exp":1700000001,"iss":"booking"})"), strict) ==
        JwtCheck::kWrongAudience);
  CHECK(check(hs256(kHeader, R"({"sub":"alice","exp":1700000001,"aud":["x"],"iss":"booking"})"), strict) ==
        JwtCheck::kWrongAudience);
  CHECK(check(hs256(kHeader, R"({"sub":"alice","exp":1700000001,"aud":"https://clinic.example","iss":"other"})"),
              strict) == JwtCheck::kWrongIssuer);
  CHECK(check(hs256(kHeader, R"({"sub":"alice","exp":1700000001,"aud":"https://clinic.example"})"), strict) ==
        JwtCheck::kWrongIssuer);
  // No audience configured: a token that names one is for someone else.
  CHECK(check(hs256(kHeader, R"({"sub":"alice","exp":1700000100,"aud":"another-app"})")) == JwtCheck::kWrongAudience);
  CHECK(check(hs256(kHeader, R"({"sub":"bob","exp":1700000100})")) == JwtCheck::kWrongId);
  CHECK(check(hs256(kHeader, R"({"sub":"alice","peer":"carol","exp":1700000100})")) == JwtCheck::kWrongPeer);
}

TEST_CASE("malformed and oversized tokens are refused as such", "[jwt]") {
  CHECK(check("") == JwtCheck::kMalformed);
  CHECK(check("a.b") == JwtCheck::kMalformed);
  CHECK(check("a.b.c.d") == JwtCheck::kMalformed);
  CHECK(check("!!!.e30.AA") == JwtCheck::kMalformed);
  CHECK(check(b64url("not json") + "." + b64url("{}") + ".AA") == JwtCheck::kMalformed);
  CHECK(check(hs256(kHeader, R"({"exp":1700000100})")) == JwtCheck::kMalformed);                // no sub
  CHECK(check(hs256(kHeader, R"({"sub":"alice"})")) == JwtCheck::kMalformed);                   // no exp
  CHECK(check(hs256(kHeader, R"({"sub":"alice","exp":"tomorrow"})")) == JwtCheck::kMalformed);  // not a number
  CHECK(check(hs256(kHeader, R"(["sub"])")) == JwtCheck::kMalformed);
  // A claim named twice (parsers differ on which wins), a time that is infinite.
  CHECK(check(hs256(kHeader, R"({"sub":"alice","exp":1700000100,"sub":"bob"})")) == JwtCheck::kMalformed);
  CHECK(check(hs256(kHeader, R"({"sub":"alice","exp":1700000100,"exp":1})")) == JwtCheck::kMalformed);
  CHECK(check(hs256(kHeader, R"({"sub":"alice","exp":9e308})")) == JwtCheck::kMalformed);
  CHECK(check(hs256(kHeader, R"({"sub":"alice","exp":1700000100,"nbf":-9e308})")) == JwtCheck::kMalformed);
  const std::string big = hs256(kHeader, R"({"sub":"alice","exp":1700000100,"pad":")" + std::string(8000, 'x') + "\"}");
  CHECK(check(big) == JwtCheck::kTooLarge);
}

TEST_CASE("a JWKS holds RSA, P-256 and Ed25519 keys by kid, and refuses what it cannot use", "[jwt]") {
  std::string error;
  // An Ed25519 key (RFC 8037's example public key).
  auto ok = Jwks::parse(R"({"keys":[{"kty":"OKP","crv":"Ed25519","kid":"ed",
    "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]})",
                        error);
  REQUIRE(ok);
  CHECK(ok->size() == 1);
  REQUIRE(ok->find("ed"));
  CHECK(ok->find("ed")->alg == "EdDSA");
  CHECK_FALSE(ok->find("other"));
  // HS256 under a kid the JWKS has: the public key taken for an HMAC key.
  JwtRules both = with_secret();
  both.jwks = &*ok;
  CHECK(check(hs256(R"({"alg":"HS256","kid":"ed"})", R"({"sub":"alice","exp":1700000100})"), both) ==
        JwtCheck::kAlgRefused);
  CHECK(check(hs256(R"({"alg":"HS256","kid":"app"})", R"({"sub":"alice","exp":1700000100})"), both) ==
        JwtCheck::kOk);  // a kid of the app's own, not a JWKS key
  CHECK(check(hs256(R"({"alg":"EdDSA","kid":"ed"})", R"({"sub":"alice","exp":1700000100})"), both) ==
        JwtCheck::kBadSignature);  // an HMAC where an Ed25519 signature belongs
  // An identity provider's JWKS: keys for encryption and other algorithms
  // beside the one duetd uses are skipped, not fatal.
  auto mixed = Jwks::parse(R"({"keys":[{"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},
    {"kty":"OKP","crv":"Ed25519","kid":"ed","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
    {"kty":"RSA","kid":"r384","alg":"RS384","n":"AQAB","e":"AQAB"},{"kty":"EC","crv":"P-384","kid":"p384"}]})",
                           error);
  REQUIRE(mixed);
  CHECK(mixed->size() == 1);
  CHECK(mixed->skipped().size() == 3);
  CHECK_FALSE(Jwks::parse("[]", error));
  CHECK_FALSE(Jwks::parse(R"({"keys":[]})", error));
  CHECK_FALSE(Jwks::parse(R"({"keys":[{"kty":"oct","kid":"s","k":"AAAA"}]})", error));
  CHECK(error.find("oct") != std::string::npos);
  CHECK_FALSE(Jwks::parse(R"({"keys":[{"kty":"OKP","crv":"Ed25519",
    "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]})",
                          error));  // no kid
  CHECK_FALSE(Jwks::parse(R"({"keys":[{"kty":"OKP","crv":"Ed25519","kid":"ed","alg":"RS256",
    "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]})",
                          error));  // alg of another key type
  CHECK_FALSE(Jwks::parse(R"({"keys":[{"kty":"EC","crv":"P-256","kid":"ec","x":"AAAA","y":"AAAA"}]})", error));
  CHECK_FALSE(Jwks::parse(R"({"keys":[{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB"}]})", error));  // too short
  CHECK(error.find("2048") != std::string::npos);
}
