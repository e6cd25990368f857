#include "signature.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace duet::webhooks {

namespace {

constexpr std::size_t kMinSecretBytes = 24;

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                                reinterpret_cast<const unsigned char *>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

// Standard base64 with its padding; nullopt for anything else.
std::optional<std::string> unbase64(std::string_view text) {
  if (text.empty() || text.size() % 4 != 0)
    return std::nullopt;
  for (std::size_t i = 0; i < text.size(); i++) {
    const char c = text[i];
    const bool pad = c == '=' && i >= text.size() - 2 && (i == text.size() - 1 || text.back() == '=');
    if (!pad && !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/'))
      return std::nullopt;
  }
  std::string out(text.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                                reinterpret_cast<const unsigned char *>(text.data()), static_cast<int>(text.size()));
  if (n < 0)
    return std::nullopt;
  // EVP_DecodeBlock counts the padding's bytes as zeros: take them off.
  std::size_t len = static_cast<std::size_t>(n);
  for (std::size_t i = text.size(); i > 0 && text[i - 1] == '='; i--)
    len--;
  out.resize(len);
  return out;
}

}  // namespace

std::optional<std::string> secret_bytes(std::string_view text) {
  constexpr std::string_view kPrefix = "whsec_";
  if (text.substr(0, kPrefix.size()) == kPrefix)
    text.remove_prefix(kPrefix.size());
  std::optional<std::string> bytes = unbase64(text);
  if (!bytes || bytes->size() < kMinSecretBytes)
    return std::nullopt;
  return bytes;
}

std::string sign(std::string_view secret, std::string_view id, std::int64_t timestamp_s, std::string_view body) {
  std::string content;
  content.reserve(id.size() + body.size() + 24);
  content.append(id).append(".").append(std::to_string(timestamp_s)).append(".").append(body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (!HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
            reinterpret_cast<const unsigned char *>(content.data()), content.size(), mac, &len) ||
      len != 32)
    return std::string();
  return "v1," + base64(std::string_view(reinterpret_cast<const char *>(mac), len));
}

}  // namespace duet::webhooks
