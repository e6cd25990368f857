// JWT call tokens (RFC 7519, compact JWS): what an app's backend mints with
// any JWT library. HS256 with duetd's --auth-secret; RS256, ES256 and EdDSA
// with a public key from --auth-jwks, found by the header's "kid". Only the
// configured algorithms are accepted: "none" never, and HS256 only ever
// with the secret (a public key is never taken for an HMAC key).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "jwks.hpp"

namespace duet::auth {

inline constexpr std::size_t kMaxJwtBytes = 8192;

struct JwtRules {
  std::string_view secret;     // HS256; empty: not accepted
  const Jwks *jwks = nullptr;  // RS256, ES256, EdDSA; null: not accepted
  std::string_view audience;   // when set, "aud" must hold it
  std::string_view issuer;     // when set, "iss" must be it
  std::int64_t skew = 60;      // seconds allowed either way on exp and nbf
};

enum class JwtCheck {
  kOk,
  kMalformed,
  kTooLarge,
  kAlgRefused,
  kUnknownKid,
  kBadSignature,
  kExpired,
  kNotYetValid,
  kWrongAudience,
  kWrongIssuer,
  kWrongId,
  kWrongPeer,
};

// Checks token for an open by id naming peer at now: the signature first,
// then the claims ("sub" is the id, "peer" if present the peer, "exp"
// required, "nbf", "aud", "iss").
JwtCheck verify_jwt(const JwtRules &rules, std::string_view token, std::string_view id, std::string_view peer,
                    std::int64_t now_unix);

// "expired", "bad-signature", …: the refusal's name, the error code without
// "auth-".
const char *jwt_check_name(JwtCheck check);

// An HS256 JWT with sub, peer and aud (when not empty), iat and exp, as
// `duetd token` prints it; empty when OpenSSL could not sign.
std::string mint_hs256(std::string_view secret, std::string_view id, std::string_view peer, std::string_view audience,
                       std::int64_t iat, std::int64_t exp);

}  // namespace duet::auth
