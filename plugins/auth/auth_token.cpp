#include "auth_token.hpp"

#include <cstring>
#include <optional>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "duet/util.hpp"

namespace duet::auth {

namespace {

// The 32-byte MAC; empty only when OpenSSL could not make one (no memory),
// which verify() takes for a bad signature, never for a match.
std::string mac(std::string_view secret, std::string_view signed_part) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (!HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
            reinterpret_cast<const unsigned char *>(signed_part.data()), signed_part.size(), digest, &len) ||
      len != 32)
    return std::string();
  return std::string(reinterpret_cast<char *>(digest), len);
}

}  // namespace

std::string mint(std::string_view secret, std::string_view id, std::string_view peer, std::int64_t expiry_unix) {
  std::string payload = std::to_string(expiry_unix) + "\n" + std::string(id) + "\n" + std::string(peer);
  std::string signed_part = "v1." + duet::base64url(payload);
  return signed_part + "." + duet::base64url(mac(secret, signed_part));
}

Check verify(std::string_view secret, std::string_view token, std::string_view id, std::string_view peer,
             std::int64_t now_unix) {
  if (token.size() > 2048 || token.substr(0, 3) != "v1.")
    return Check::kMalformed;
  auto dot = token.rfind('.');
  if (dot <= 3)
    return Check::kMalformed;
  std::string_view signed_part = token.substr(0, dot);
  const std::optional<std::string> given = duet::from_base64url(token.substr(dot + 1));
  if (!given)
    return Check::kMalformed;
  std::string expected = mac(secret, signed_part);
  if (expected.empty() || given->size() != expected.size() ||
      CRYPTO_memcmp(given->data(), expected.data(), expected.size()) != 0)
    return Check::kBadSignature;
  const std::optional<std::string> decoded = duet::from_base64url(signed_part.substr(3));
  if (!decoded)
    return Check::kMalformed;
  const std::string &payload = *decoded;
  auto first = payload.find('\n');
  auto second = first == std::string::npos ? std::string::npos : payload.find('\n', first + 1);
  if (second == std::string::npos)
    return Check::kMalformed;
  char *end = nullptr;
  std::string expiry_text = payload.substr(0, first);
  long long expiry = std::strtoll(expiry_text.c_str(), &end, 10);
  if (expiry_text.empty() || *end != '\0')
    return Check::kMalformed;
  if (expiry <= now_unix)
    return Check::kExpired;
  if (std::string_view(payload).substr(first + 1, second - first - 1) != id)
    return Check::kWrongId;
  std::string_view bound_peer = std::string_view(payload).substr(second + 1);
  if (!bound_peer.empty() && bound_peer != peer)
    return Check::kWrongPeer;
  return Check::kOk;
}

bool secret_long_enough(std::string_view secret) { return secret.size() >= 16; }

}  // namespace duet::auth
