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

// Reads a secret file: its bytes, without trailing newlines. Throws
// std::invalid_argument with a sentence when unreadable or shorter than 16 bytes.
std::string read_secret_file(const std::string &path);

// "3600", "90s", "30m", "1h", "7d" -> seconds; -1 when not understood.
std::int64_t parse_duration(std::string_view text);

}  // namespace duet::auth
