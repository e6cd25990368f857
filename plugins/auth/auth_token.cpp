#include "auth_token.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

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
  return true;
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

std::string read_secret_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw std::invalid_argument("cannot read the secret file " + path + ": " + std::strerror(errno));
  std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r'))
    secret.pop_back();
  if (secret.size() < 16)
    throw std::invalid_argument("the secret in " + path +
                                " is shorter than 16 bytes; make one with: head -c 32 /dev/urandom | base64 > " + path);
  return secret;
}

std::int64_t parse_duration(std::string_view text) {
  if (text.empty() || text.size() > 12)
    return -1;
  std::int64_t unit = 1;
  switch (text.back()) {
  case 's': unit = 1; text.remove_suffix(1); break;
  case 'm': unit = 60; text.remove_suffix(1); break;
  case 'h': unit = 3600; text.remove_suffix(1); break;
  case 'd': unit = 86400; text.remove_suffix(1); break;
  default: break;
  }
  if (text.empty())
    return -1;
  std::int64_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return -1;
    n = n * 10 + (c - '0');
  }
  return n * unit;
}

}  // namespace duet::auth
