// The public keys an app's backend signs call tokens with, from a JWKS file
// (RFC 7517): RSA keys for RS256, EC P-256 keys for ES256, OKP Ed25519 keys
// for EdDSA, each found by its "kid". Made into OpenSSL keys once, when the
// file is read (at start and on SIGHUP).
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/evp.h>

namespace duet::auth {

struct PkeyFree {
  void operator()(EVP_PKEY *key) const { EVP_PKEY_free(key); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

struct JwksKey {
  std::string alg;  // the one algorithm this key verifies: RS256, ES256 or EdDSA
  Pkey pkey;
};

class Jwks {
public:
  // The keys of a JWKS document, or nullopt with a sentence in error. Keys
  // not meant for signatures duetd checks ("use":"enc", an "oct" key,
  // another curve or algorithm) are skipped, as an identity provider's JWKS
  // lists them too; a signing key of ours that is broken fails the whole.
  static std::optional<Jwks> parse(std::string_view json, std::string &error);

  // A file that is refused as a whole may still say which keys are gone:
  // the kids of its document's keys (nullopt when it is not JSON with a
  // keys array). keep_only() drops every key whose kid is not among them.
  static std::optional<std::set<std::string, std::less<>>> kids_in(std::string_view json);
  std::size_t keep_only(const std::set<std::string, std::less<>> &kids);

  const JwksKey *find(std::string_view kid) const;
  std::size_t size() const { return keys_.size(); }
  // The keys skipped, each as 'kid "K" (why)', for the log.
  const std::vector<std::string> &skipped() const { return skipped_; }

private:
  static std::optional<Jwks> parse_keys(std::string_view json, std::string &error);
  std::map<std::string, JwksKey, std::less<>> keys_;
  std::vector<std::string> skipped_;
};

}  // namespace duet::auth
