#include "push_crypto.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "duet/util.hpp"
#include "ids.hpp"

namespace duet::ring {

namespace {

constexpr std::size_t kPointBytes = 65;  // 0x04 || x || y
constexpr std::size_t kAuthBytes = 16;
constexpr std::size_t kSaltBytes = 16;
constexpr std::size_t kTagBytes = 16;
constexpr std::uint32_t kRecordSize = 4096;

[[noreturn]] void fail(const std::string &what) {
  char reason[256] = "";
  ERR_error_string_n(ERR_get_error(), reason, sizeof reason);
  ERR_clear_error();
  throw CryptoError(what + ": " + reason);
}

struct PkeyFree {
  void operator()(EVP_PKEY *k) const { EVP_PKEY_free(k); }
};
struct CtxFree {
  void operator()(EVP_PKEY_CTX *c) const { EVP_PKEY_CTX_free(c); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, CtxFree>;

std::string public_point(EVP_PKEY *key) {
  unsigned char point[kPointBytes];
  std::size_t len = 0;
  if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point, &len) != 1 ||
      len != kPointBytes)
    fail("cannot read a P-256 public key");
  return std::string(reinterpret_cast<char *>(point), len);
}

Pkey new_p256_key() {
  Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key)
    fail("cannot make a P-256 key");
  return key;
}

// A public key from its uncompressed point; OpenSSL refuses a point that is
// not on the curve while decoding it.
Pkey p256_public(std::string_view point) {
  if (point.size() != kPointBytes || point[0] != 0x04)
    return nullptr;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char *>("prime256v1"), 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, const_cast<char *>(point.data()), point.size()),
      OSSL_PARAM_construct_end(),
  };
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY *raw = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) != 1) {
    ERR_clear_error();
    return nullptr;
  }
  return Pkey(raw);
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[32];
  unsigned len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char *>(data.data()), data.size(), out, &len))
    fail("HMAC-SHA256 failed");
  return std::string(reinterpret_cast<char *>(out), len);
}

// HKDF (RFC 5869) with SHA-256, for outputs of at most 32 bytes: one block.
std::string hkdf(std::string_view salt, std::string_view ikm, std::string_view info, std::size_t length) {
  const std::string prk = hmac_sha256(salt, ikm);
  std::string block(info);
  block += '\x01';
  return hmac_sha256(prk, block).substr(0, length);
}

std::string ecdh(EVP_PKEY *own, EVP_PKEY *peer) {
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, own, nullptr));
  std::size_t len = 0;
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 || EVP_PKEY_derive_set_peer(ctx.get(), peer) != 1 ||
      EVP_PKEY_derive(ctx.get(), nullptr, &len) != 1)
    fail("ECDH failed");
  std::string secret(len, '\0');
  if (EVP_PKEY_derive(ctx.get(), reinterpret_cast<unsigned char *>(secret.data()), &len) != 1)
    fail("ECDH failed");
  secret.resize(len);
  return secret;
}

std::string aes128gcm(std::string_view key, std::string_view nonce, std::string_view plaintext) {
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  std::string out(plaintext.size() + kTagBytes, '\0');
  auto *o = reinterpret_cast<unsigned char *>(out.data());
  int len = 0, tail = 0;
  if (!ctx ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_128_gcm(), nullptr, reinterpret_cast<const unsigned char *>(key.data()),
                         reinterpret_cast<const unsigned char *>(nonce.data())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), o, &len, reinterpret_cast<const unsigned char *>(plaintext.data()),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), o + len, &tail) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, o + len + tail) != 1)
    fail("AES-128-GCM failed");
  return out;
}

// ES256: the DER signature OpenSSL makes, as JWS wants it (r || s, 32 bytes each).
std::string sign_es256(EVP_PKEY *key, std::string_view data) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  std::size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char *>(data.data()), data.size()) != 1)
    fail("ES256 signing failed");
  std::string der(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char *>(der.data()), &len,
                     reinterpret_cast<const unsigned char *>(data.data()), data.size()) != 1)
    fail("ES256 signing failed");
  const auto *p = reinterpret_cast<const unsigned char *>(der.data());
  std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len)),
                                                            &ECDSA_SIG_free);
  unsigned char raw[64];
  if (!sig || BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), raw, 32) != 32 ||
      BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), raw + 32, 32) != 32)
    fail("ES256 signing failed");
  return std::string(reinterpret_cast<char *>(raw), sizeof raw);
}

Pkey read_key(const std::string &path) {
  FILE *f = std::fopen(path.c_str(), "r");
  if (!f)
    return nullptr;
  Pkey key(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  if (!key || EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_EC || EVP_PKEY_get_bits(key.get()) != 256)
    fail("the VAPID key " + path + " is not a P-256 private key in PEM (move it away to make a new one)");
  return key;
}

// Written to a private temporary file, then linked into place: a reader
// never sees half a key, and link() fails when another process won.
void write_key(EVP_PKEY *key, const std::string &path) {
  // The state folder may not exist yet: made private, like duetd makes it.
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!dir.empty() && std::filesystem::create_directories(dir, ec))
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
  const std::string tmp = path + ".tmp-" + random_hex(6);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    throw CryptoError("cannot write the VAPID key " + tmp + ": " + std::strerror(errno));
  FILE *f = fdopen(fd, "w");
  const bool written = f && PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1 &&
                       std::fflush(f) == 0 && fsync(fd) == 0;
  if (f)
    std::fclose(f);
  else
    ::close(fd);
  const int linked = written ? ::link(tmp.c_str(), path.c_str()) : -1;
  const int link_errno = errno;
  ::unlink(tmp.c_str());
  if (!written)
    fail("cannot write the VAPID key " + path);
  if (linked != 0 && link_errno != EEXIST)
    throw CryptoError("cannot write the VAPID key " + path + ": " + std::strerror(link_errno));
}

}  // namespace

void VapidKey::Free::operator()(EVP_PKEY *key) const { EVP_PKEY_free(key); }

VapidKey::VapidKey(EVP_PKEY *key) : key_(key), public_b64_(duet::base64url(public_point(key))) {}

VapidKey VapidKey::load_or_create(const std::string &path) {
  if (Pkey key = read_key(path))
    return VapidKey(key.release());
  if (errno != ENOENT)
    throw CryptoError("cannot read the VAPID key " + path + ": " + std::strerror(errno));
  write_key(new_p256_key().get(), path);
  Pkey key = read_key(path);  // ours, or the one another process linked first
  if (!key)
    throw CryptoError("cannot read the VAPID key " + path + ": " + std::strerror(errno));
  return VapidKey(key.release());
}

VapidKey VapidKey::from_pem(std::string_view pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> in(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  Pkey key(in ? PEM_read_bio_PrivateKey(in.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key || EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_EC || EVP_PKEY_get_bits(key.get()) != 256)
    fail("the shared VAPID key is not a P-256 private key in PEM");
  return VapidKey(key.release());
}

std::string VapidKey::pem() const {
  std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), &BIO_free);
  if (!out || PEM_write_bio_PrivateKey(out.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    fail("cannot write the VAPID key as PEM");
  char *data = nullptr;
  const long size = BIO_get_mem_data(out.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

std::string VapidKey::authorization(const std::string &audience, const std::string &subject,
                                    std::int64_t expires_unix) const {
  // audience and subject are checked URLs (no quotes or backslashes).
  std::string claims = "{\"aud\":\"" + audience + "\",\"exp\":" + std::to_string(expires_unix);
  if (!subject.empty())
    claims += ",\"sub\":\"" + subject + "\"";
  claims += "}";
  const std::string signed_part = duet::base64url(R"({"typ":"JWT","alg":"ES256"})") + "." + duet::base64url(claims);
  return "vapid t=" + signed_part + "." + duet::base64url(sign_es256(key_.get(), signed_part)) + ", k=" + public_b64_;
}

// The full check once, when a subscription is stored (each push decodes
// the point again, which keeps it on the curve).
bool valid_p256_public_key(std::string_view bytes) {
  const Pkey key = p256_public(bytes);
  PkeyCtx check(key ? EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr) : nullptr);
  const bool valid = check && EVP_PKEY_public_check(check.get()) == 1;
  ERR_clear_error();
  return valid;
}

std::string encrypt_push(std::string_view p256dh, std::string_view auth_secret, std::string_view plaintext) {
  const Pkey ua_public = p256_public(p256dh);
  if (!ua_public || auth_secret.size() != kAuthBytes || plaintext.size() > kMaxPushPlaintext)
    throw CryptoError("a subscription key or the payload is malformed");
  const Pkey as_key = new_p256_key();  // one per message: its public half goes in the header
  const std::string as_public = public_point(as_key.get());
  const std::string shared = ecdh(as_key.get(), ua_public.get());

  std::string key_info = "WebPush: info";
  key_info += '\0';
  key_info.append(p256dh);
  key_info += as_public;
  const std::string ikm = hkdf(auth_secret, shared, key_info, 32);
  const std::string salt = random_bytes(kSaltBytes);
  const std::string cek = hkdf(salt, ikm, std::string("Content-Encoding: aes128gcm\0", 28), 16);
  const std::string nonce = hkdf(salt, ikm, std::string("Content-Encoding: nonce\0", 24), 12);

  std::string record(plaintext);
  record += '\x02';  // the last record's delimiter; no padding after it

  std::string body = salt;
  for (int shift = 24; shift >= 0; shift -= 8)
    body += static_cast<char>((kRecordSize >> shift) & 0xff);
  body += static_cast<char>(kPointBytes);
  body += as_public;
  body += aes128gcm(cek, nonce, record);
  return body;
}

}  // namespace duet::ring
