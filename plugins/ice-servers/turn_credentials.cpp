#include "turn_credentials.hpp"

#include <chrono>

#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace duet::ice {

namespace {

std::string base64(const unsigned char *data, std::size_t len) {
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()), data, static_cast<int>(len));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

}  // namespace

TurnCredentials turn_credentials(std::string_view secret, std::string_view id, std::int64_t expiry_unix_s) {
  TurnCredentials c;
  c.username = std::to_string(expiry_unix_s) + ":" + std::string(id);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned mac_len = 0;
  HMAC(EVP_sha1(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char *>(c.username.data()), c.username.size(), mac, &mac_len);
  c.password = base64(mac, mac_len);
  return c;
}

std::int64_t unix_now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace duet::ice
