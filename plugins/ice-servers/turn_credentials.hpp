// TURN credentials in coturn's REST-API form (use-auth-secret): username
// "EXPIRY:ID" (EXPIRY in Unix seconds), password base64(HMAC-SHA1(secret,
// username)). coturn recomputes the password from its static-auth-secret and
// refuses a username whose EXPIRY has passed when an allocation is made.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace duet::ice {

struct TurnCredentials {
  std::string username;
  std::string password;
};

TurnCredentials turn_credentials(std::string_view secret, std::string_view id, std::int64_t expiry_unix_s);

// Seconds since the Unix epoch, the clock coturn compares EXPIRY with.
std::int64_t unix_now_s();

}  // namespace duet::ice
