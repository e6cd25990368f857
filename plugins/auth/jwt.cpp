#include "jwt.hpp"

#include <cmath>
#include <memory>
#include <optional>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "duet/util.hpp"

namespace duet::auth {

namespace {

struct MdCtxFree {
  void operator()(EVP_MD_CTX *c) const { EVP_MD_CTX_free(c); }
};
struct EcdsaSigFree {
  void operator()(ECDSA_SIG *s) const { ECDSA_SIG_free(s); }
};

const unsigned char *bytes(std::string_view s) { return reinterpret_cast<const unsigned char *>(s.data()); }

constexpr std::size_t kSha256Bytes = 32;

// The 32-byte MAC, or nullopt when OpenSSL could not make one (no memory):
// never an empty MAC that an empty signature would match.
std::optional<std::string> hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), bytes(data), data.size(), digest, &len) ||
      len != kSha256Bytes)
    return std::nullopt;
  return std::string(reinterpret_cast<char *>(digest), len);
}

// JWS's ES256 signature is r || s, 32 bytes each; OpenSSL verifies DER.
std::optional<std::string> ecdsa_der(std::string_view raw) {
  if (raw.size() != 64)
    return std::nullopt;
  std::unique_ptr<ECDSA_SIG, EcdsaSigFree> sig(ECDSA_SIG_new());
  BIGNUM *r = BN_bin2bn(bytes(raw), 32, nullptr), *s = BN_bin2bn(bytes(raw) + 32, 32, nullptr);
  if (!sig || !r || !s || !ECDSA_SIG_set0(sig.get(), r, s)) {
    BN_free(r);
    BN_free(s);
    return std::nullopt;
  }
  unsigned char *der = nullptr;
  int len = i2d_ECDSA_SIG(sig.get(), &der);
  if (len <= 0)
    return std::nullopt;
  std::string out(reinterpret_cast<char *>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  return out;
}

bool public_key_verifies(const JwksKey &key, std::string_view signed_part, std::string_view signature) {
  std::string der;
  if (key.alg == "ES256") {
    auto converted = ecdsa_der(signature);
    if (!converted)
      return false;
    der = std::move(*converted);
    signature = der;
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  const EVP_MD *md = key.alg == "EdDSA" ? nullptr : EVP_sha256();  // Ed25519 hashes itself
  return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key.pkey.get()) == 1 &&
         EVP_DigestVerify(ctx.get(), bytes(signature), signature.size(), bytes(signed_part), signed_part.size()) == 1;
}

// A part of the token as a JSON object; text keeps the decoded bytes for as
// long as doc is used.
bool json_part(std::string_view part, std::string &text, rapidjson::Document &doc) {
  auto decoded = duet::from_base64url(part);
  if (!decoded)
    return false;
  text = std::move(*decoded);
  doc.Parse(text.data(), text.size());
  return !doc.HasParseError() && doc.IsObject();
}

const rapidjson::Value *member(const rapidjson::Value &object, const char *name) {
  auto it = object.FindMember(name);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

bool holds_audience(const rapidjson::Value *aud, std::string_view want) {
  if (!aud)
    return false;
  if (aud->IsString())
    return std::string_view(aud->GetString(), aud->GetStringLength()) == want;
  if (!aud->IsArray())
    return false;
  for (const auto &one : aud->GetArray())
    if (one.IsString() && std::string_view(one.GetString(), one.GetStringLength()) == want)
      return true;
  return false;
}

// The signature, with the key the header's alg and kid lead to.
JwtCheck check_signature(const JwtRules &rules, const rapidjson::Value &header, std::string_view signed_part,
                         std::string_view signature) {
  const rapidjson::Value *alg = member(header, "alg");
  if (!alg || !alg->IsString())
    return JwtCheck::kMalformed;
  if (member(header, "crit"))
    return JwtCheck::kMalformed;  // extensions we would have to understand
  const std::string_view name(alg->GetString(), alg->GetStringLength());
  const rapidjson::Value *kid = member(header, "kid");
  const JwksKey *key = kid && kid->IsString() && rules.jwks
                           ? rules.jwks->find(std::string_view(kid->GetString(), kid->GetStringLength()))
                           : nullptr;
  if (name == "HS256") {
    // A kid that names a public key says the token means that key: HS256
    // with it is the public-key-as-HMAC-secret trick, refused as such.
    if (rules.secret.empty() || key)
      return JwtCheck::kAlgRefused;
    const std::optional<std::string> expected = hmac_sha256(rules.secret, signed_part);
    return expected && signature.size() == expected->size() &&
                   CRYPTO_memcmp(signature.data(), expected->data(), expected->size()) == 0
               ? JwtCheck::kOk
               : JwtCheck::kBadSignature;
  }
  if ((name != "RS256" && name != "ES256" && name != "EdDSA") || !rules.jwks)
    return JwtCheck::kAlgRefused;
  if (!key)
    return JwtCheck::kUnknownKid;
  if (key->alg != name)
    return JwtCheck::kAlgRefused;
  return public_key_verifies(*key, signed_part, signature) ? JwtCheck::kOk : JwtCheck::kBadSignature;
}

// Parsers differ on which of two equal keys wins: a token that names a
// claim twice is not one to guess about.
bool repeats_a_claim(const rapidjson::Value &claims) {
  static const char *const kClaims[] = {"sub", "peer", "exp", "nbf", "aud", "iss"};
  for (const char *name : kClaims) {
    int seen = 0;
    for (auto it = claims.MemberBegin(); it != claims.MemberEnd(); ++it)
      seen += std::string_view(it->name.GetString(), it->name.GetStringLength()) == name;
    if (seen > 1)
      return true;
  }
  return false;
}

JwtCheck check_claims(const JwtRules &rules, const rapidjson::Value &claims, std::string_view id, std::string_view peer,
                      std::int64_t now) {
  const rapidjson::Value *sub = member(claims, "sub"), *exp = member(claims, "exp"), *nbf = member(claims, "nbf"),
                         *bound = member(claims, "peer"), *iss = member(claims, "iss"), *aud = member(claims, "aud");
  const auto finite = [](const rapidjson::Value *v) { return v->IsNumber() && std::isfinite(v->GetDouble()); };
  if (!sub || !sub->IsString() || !exp || !finite(exp) || (nbf && !finite(nbf)) || (bound && !bound->IsString()) ||
      (iss && !iss->IsString()) || repeats_a_claim(claims))
    return JwtCheck::kMalformed;
  if (exp->GetDouble() + static_cast<double>(rules.skew) <= static_cast<double>(now))
    return JwtCheck::kExpired;
  if (nbf && nbf->GetDouble() > static_cast<double>(now + rules.skew))
    return JwtCheck::kNotYetValid;
  // A token for an audience is for that audience only (RFC 7519 4.1.3): with
  // none configured, one that names any is not for this server.
  if (rules.audience.empty() ? aud != nullptr : !holds_audience(aud, rules.audience))
    return JwtCheck::kWrongAudience;
  if (!rules.issuer.empty() && (!iss || std::string_view(iss->GetString(), iss->GetStringLength()) != rules.issuer))
    return JwtCheck::kWrongIssuer;
  if (std::string_view(sub->GetString(), sub->GetStringLength()) != id)
    return JwtCheck::kWrongId;
  if (bound && std::string_view(bound->GetString(), bound->GetStringLength()) != peer)
    return JwtCheck::kWrongPeer;
  return JwtCheck::kOk;
}

JwtCheck verify_jwt_parts(const JwtRules &rules, std::string_view token, std::string_view id, std::string_view peer,
                          std::int64_t now_unix) {
  if (token.size() > kMaxJwtBytes)
    return JwtCheck::kTooLarge;
  const auto first = token.find('.');
  const auto last = token.rfind('.');
  if (first == std::string_view::npos || first == last || token.find('.', first + 1) != last)
    return JwtCheck::kMalformed;
  std::string header_text, claims_text;
  rapidjson::Document header, claims;
  auto signature = duet::from_base64url(token.substr(last + 1));
  if (!json_part(token.substr(0, first), header_text, header) || !signature)
    return JwtCheck::kMalformed;
  const JwtCheck signed_ok = check_signature(rules, header, token.substr(0, last), *signature);
  if (signed_ok != JwtCheck::kOk)
    return signed_ok;
  if (!json_part(token.substr(first + 1, last - first - 1), claims_text, claims))
    return JwtCheck::kMalformed;
  return check_claims(rules, claims, id, peer, now_unix);
}

}  // namespace

JwtCheck verify_jwt(const JwtRules &rules, std::string_view token, std::string_view id, std::string_view peer,
                    std::int64_t now_unix) {
  const JwtCheck check = verify_jwt_parts(rules, token, id, peer, now_unix);
  ERR_clear_error();  // a failed verify leaves its errors for the next OpenSSL user to misread
  return check;
}

const char *jwt_check_name(JwtCheck check) {
  switch (check) {
  case JwtCheck::kOk:
    return "ok";
  case JwtCheck::kMalformed:
    return "malformed";
  case JwtCheck::kTooLarge:
    return "too-large";
  case JwtCheck::kAlgRefused:
    return "alg-refused";
  case JwtCheck::kUnknownKid:
    return "unknown-kid";
  case JwtCheck::kBadSignature:
    return "bad-signature";
  case JwtCheck::kExpired:
    return "expired";
  case JwtCheck::kNotYetValid:
    return "not-yet-valid";
  case JwtCheck::kWrongAudience:
    return "wrong-audience";
  case JwtCheck::kWrongIssuer:
    return "wrong-issuer";
  case JwtCheck::kWrongId:
    return "wrong-id";
  case JwtCheck::kWrongPeer:
    return "wrong-peer";
  }
  return "malformed";
}

std::string mint_hs256(std::string_view secret, std::string_view id, std::string_view peer, std::string_view audience,
                       std::int64_t iat, std::int64_t exp) {
  rapidjson::StringBuffer claims;
  rapidjson::Writer<rapidjson::StringBuffer> w(claims);
  w.StartObject();
  w.Key("sub");
  w.String(id.data(), static_cast<rapidjson::SizeType>(id.size()));
  if (!peer.empty()) {
    w.Key("peer");
    w.String(peer.data(), static_cast<rapidjson::SizeType>(peer.size()));
  }
  if (!audience.empty()) {
    w.Key("aud");
    w.String(audience.data(), static_cast<rapidjson::SizeType>(audience.size()));
  }
  w.Key("iat");
  w.Int64(iat);
  w.Key("exp");
  w.Int64(exp);
  w.EndObject();
  const std::string signed_part = duet::base64url(R"({"alg":"HS256","typ":"JWT"})") + "." +
                                  duet::base64url(std::string_view(claims.GetString(), claims.GetSize()));
  const std::optional<std::string> mac = hmac_sha256(secret, signed_part);
  return mac ? signed_part + "." + duet::base64url(*mac) : std::string();
}

}  // namespace duet::auth
