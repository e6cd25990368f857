// Ids and secrets of lines, devices, invites and rings: all from OpenSSL's
// CSPRNG, so none can be guessed. Readable ones are words plus a short code.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace duet::ring {

std::string random_bytes(std::size_t n);
// 2 * bytes lowercase hex digits.
std::string random_hex(std::size_t bytes);
// A line's public id, the ring link's ?ring=: four words and seven
// characters, 67 random bits ("amber-fox-river-tulip-k7m2q9x").
std::string new_line_id();
// An "add this device" code: three words and four characters, 44 bits;
// it lives 10 minutes, is used once, and joins are limited per address.
std::string new_invite_code();
// What the store keeps of a secret or code: its SHA-256, never the text.
std::string sha256(std::string_view text);
// Compares two hashes in constant time.
bool same_secret(std::string_view a, std::string_view b);

}  // namespace duet::ring
