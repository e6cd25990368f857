// Webhook signatures as the Standard Webhooks convention has them
// (standardwebhooks.com), so that receivers check them with its libraries:
// the secret is "whsec_" and the base64 of its bytes; each request carries
// webhook-id, webhook-timestamp (Unix seconds) and webhook-signature,
// "v1," and the base64 of HMAC-SHA256(secret, "ID.TIMESTAMP.BODY").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace duet::webhooks {

// The secret's bytes from its text ("whsec_…", or the base64 alone), or
// nullopt when it is not base64 or shorter than 24 bytes (the convention's
// minimum is 24, its libraries make 24).
std::optional<std::string> secret_bytes(std::string_view text);

// "v1,<base64>"; empty when OpenSSL could not make the MAC.
std::string sign(std::string_view secret, std::string_view id, std::int64_t timestamp_s, std::string_view body);

}  // namespace duet::webhooks
