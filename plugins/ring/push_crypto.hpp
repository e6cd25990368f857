// Web Push's cryptography, with OpenSSL: the server's VAPID key (P-256,
// made once and kept in the state folder, so subscriptions made with it stay
// valid across restarts and upgrades), the JWT that says a push comes from
// this server (RFC 8292, ES256), and the payload encryption a push service
// cannot read (RFC 8291, aes128gcm).
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

typedef struct evp_pkey_st EVP_PKEY;

namespace duet::ring {

// OpenSSL or the key file failed.
class CryptoError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

class VapidKey {
public:
  // Reads the PEM private key at path, or makes one there (mode 0600,
  // written whole or not at all; of two processes making it at once, one
  // wins and both use its key).
  static VapidKey load_or_create(const std::string &path);
  // The key in PEM text (as the file holds it), and back: how the nodes of
  // a cluster share one key through Redis.
  static VapidKey from_pem(std::string_view pem);
  std::string pem() const;

  // The public key as browsers take it (applicationServerKey): the
  // uncompressed P-256 point, 65 bytes, in base64url.
  const std::string &public_key() const { return public_b64_; }
  // "vapid t=JWT, k=KEY" for a push service at audience (its origin,
  // "https://host[:port]"), valid until expires_unix.
  std::string authorization(const std::string &audience, const std::string &subject, std::int64_t expires_unix) const;

private:
  struct Free {
    void operator()(EVP_PKEY *key) const;
  };
  explicit VapidKey(EVP_PKEY *key);
  std::unique_ptr<EVP_PKEY, Free> key_;
  std::string public_b64_;
};

// True when bytes are an uncompressed P-256 point on the curve (a
// subscription's p256dh key).
bool valid_p256_public_key(std::string_view bytes);

// Largest plaintext one encrypted push carries: push services take 4096
// bytes of body; the header and the tag take 103 of them, the padding
// delimiter one.
constexpr std::size_t kMaxPushPlaintext = 3992;

// RFC 8291: plaintext encrypted for the subscription's p256dh key (65
// bytes) and auth secret (16 bytes), as one aes128gcm record with its
// header (salt, record size, the sender's one-time public key).
std::string encrypt_push(std::string_view p256dh, std::string_view auth_secret, std::string_view plaintext);

}  // namespace duet::ring
