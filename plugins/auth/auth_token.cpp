#include "auth_token.hpp"

#include <cstring>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace duet::auth {

namespace {

const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string b64url(std::string_view in) {
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(acc >> bits) & 63];
    }
  }
  if (bits > 0)
    out += kAlphabet[(acc << (6 - bits)) & 63];
  return out;
}

bool unb64url(std::string_view in, std::string &out) {
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const char *p = std::strchr(kAlphabet, c);
    if (!p || c == '\0')
      return false;
    acc = (acc << 6) | static_cast<std::uint32_t>(p - kAlphabet);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  // Only what b64url() writes: no lone last character (6 spare bits) and
  // the spare bits zero, so that bytes have one text and a token cannot be
  // varied into others that verify too.
  return bits < 6 && (acc & ((1U << bits) - 1)) == 0;
}

std::string mac(std::string_view secret, std::string_view signed_part) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char *>(signed_part.data()), signed_part.size(), digest, &len);
  return std::string(reinterpret_cast<char *>(digest), len);
}

}  // namespace

std::string mint(std::string_view secret, std::string_view id, std::string_view peer, std::int64_t expiry_unix) {
  std::string payload = std::to_string(expiry_unix) + "\n" + std::string(id) + "\n" + std::string(peer);
  std::string signed_part = "v1." + b64url(payload);
  return signed_part + "." + b64url(mac(secret, signed_part));
}

Check verify(std::string_view secret, std::string_view token, std::string_view id, std::string_view peer,
             std::int64_t now_unix) {
  if (token.size() > 2048 || token.substr(0, 3) != "v1.")
    return Check::kMalformed;
  auto dot = token.rfind('.');
  if (dot <= 3)
    return Check::kMalformed;
  std::string_view signed_part = token.substr(0, dot);
  std::string given;
  if (!unb64url(token.substr(dot + 1), given))
    return Check::kMalformed;
  std::string expected = mac(secret, signed_part);
  if (given.size() != expected.size() || CRYPTO_memcmp(given.data(), expected.data(), expected.size()) != 0)
    return Check::kBadSignature;
  std::string payload;
  if (!unb64url(signed_part.substr(3), payload))
    return Check::kMalformed;
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
