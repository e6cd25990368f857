// Call tokens: "v1.<payload>.<mac>", base64url parts, where the payload is
// "<expiry unix seconds>\n<id>\n<peer or empty>" and the mac is
// HMAC-SHA256(secret, "v1.<payload>"). Minted by `duetd token`, checked by
// the auth plugin. Ids never hold control characters, so '\n' separates.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace duet::auth {

std::string mint(std::string_view secret, std::string_view id, std::string_view peer, std::int64_t expiry_unix);

enum class Check { kOk, kMalformed, kBadSignature, kExpired, kWrongId, kWrongPeer };

// Verifies token for an open by id naming peer at time now; the MAC is
// compared in constant time.
Check verify(std::string_view secret, std::string_view token, std::string_view id, std::string_view peer,
             std::int64_t now_unix);

// A secret (a secret file's contents, see duet::read_trimmed_file) must
// hold at least 16 bytes; kSecretAdvice says so and how to make one.
bool secret_long_enough(std::string_view secret);
inline constexpr const char *kSecretAdvice =
    "a file holding a secret of at least 16 bytes (make one with: head -c 32 /dev/urandom | base64 > FILE)";

}  // namespace duet::auth
