#include "jwks.hpp"

#include <algorithm>
#include <array>
#include <string>
#include <utility>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <rapidjson/document.h>

#include "duet/util.hpp"

namespace duet::auth {

namespace {

constexpr int kMinRsaBits = 2048;
constexpr int kMaxRsaBits = 8192;  // a larger modulus makes every check slow

struct ParamBldFree {
  void operator()(OSSL_PARAM_BLD *b) const { OSSL_PARAM_BLD_free(b); }
};
struct ParamFree {
  void operator()(OSSL_PARAM *p) const { OSSL_PARAM_free(p); }
};
struct CtxFree {
  void operator()(EVP_PKEY_CTX *c) const { EVP_PKEY_CTX_free(c); }
};
struct BnFree {
  void operator()(BIGNUM *b) const { BN_free(b); }
};

std::optional<std::string> member_bytes(const rapidjson::Value &key, const char *name) {
  auto it = key.FindMember(name);
  if (it == key.MemberEnd() || !it->value.IsString())
    return std::nullopt;
  return duet::from_base64url(std::string_view(it->value.GetString(), it->value.GetStringLength()));
}

std::string member_text(const rapidjson::Value &key, const char *name) {
  auto it = key.FindMember(name);
  return it != key.MemberEnd() && it->value.IsString() ? std::string(it->value.GetString()) : std::string();
}

Pkey from_params(const char *type, OSSL_PARAM_BLD *bld) {
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld));
  std::unique_ptr<EVP_PKEY_CTX, CtxFree> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY *made = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
      EVP_PKEY_fromdata(ctx.get(), &made, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0)
    return nullptr;
  return Pkey(made);
}

// OpenSSL's own check of a public key (for RSA an odd e from 65537 up to
// 2^256: e = 1 would let anyone sign; for EC a point on the curve).
bool publicly_sound(EVP_PKEY *key) {
  std::unique_ptr<EVP_PKEY_CTX, CtxFree> ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  return ctx && EVP_PKEY_public_check(ctx.get()) == 1;
}

BIGNUM *bignum(const std::string &bytes) {
  return BN_bin2bn(reinterpret_cast<const unsigned char *>(bytes.data()), static_cast<int>(bytes.size()), nullptr);
}

Pkey rsa_key(const rapidjson::Value &key, std::string &error) {
  auto n = member_bytes(key, "n"), e = member_bytes(key, "e");
  if (!n || !e || n->empty() || e->empty()) {
    error = "an RSA key needs \"n\" and \"e\" in base64url";
    return nullptr;
  }
  std::unique_ptr<BIGNUM, BnFree> bn_n(bignum(*n)), bn_e(bignum(*e));
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
  if (!bn_n || !bn_e || !bld || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get())) {
    error = "the RSA key could not be made";
    return nullptr;
  }
  Pkey made = from_params("RSA", bld.get());
  if (!made)
    error = "the RSA key is not valid";
  else if (EVP_PKEY_get_bits(made.get()) < kMinRsaBits || EVP_PKEY_get_bits(made.get()) > kMaxRsaBits)
    error = "the RSA key is not from 2048 to 8192 bits", made.reset();
  else if (!publicly_sound(made.get()))
    error = "the RSA key fails OpenSSL's public key check (e must be odd, from 65537 to 2^256)", made.reset();
  return made;
}

Pkey ec_key(const rapidjson::Value &key, std::string &error) {
  auto x = member_bytes(key, "x"), y = member_bytes(key, "y");
  if (member_text(key, "crv") != "P-256" || !x || !y || x->size() != 32 || y->size() != 32) {
    error = "an EC key must be on crv P-256 with 32-byte \"x\" and \"y\"";
    return nullptr;
  }
  std::string point = "\x04" + *x + *y;  // uncompressed
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
  if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
      !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size())) {
    error = "the EC key could not be made";
    return nullptr;
  }
  Pkey made = from_params("EC", bld.get());
  if (!made || !publicly_sound(made.get()))
    error = "the EC key is not a point on P-256", made.reset();
  return made;
}

Pkey okp_key(const rapidjson::Value &key, std::string &error) {
  const std::string crv = member_text(key, "crv");
  const std::optional<std::string> x = member_bytes(key, "x");
  if (crv != "Ed25519" || !x || x->size() != 32) {
    error = "an OKP key must be crv Ed25519 with a 32-byte \"x\"";
    return nullptr;
  }
  std::array<unsigned char, 32> raw{};
  std::copy(x->begin(), x->end(), raw.begin());
  Pkey made(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, raw.data(), raw.size()));
  if (!made)
    error = "the Ed25519 key is not valid";
  return made;
}

enum class KeyFate { kUse, kSkip, kRefuse };

// One key of the document. An identity provider's JWKS also lists keys for
// encryption and for algorithms duetd does not take: those are skipped (why
// says which). A key duetd would use but cannot is refused.
KeyFate read_key(const rapidjson::Value &key, std::string &kid, JwksKey &made, std::string &why) {
  if (!key.IsObject()) {
    why = "not an object";
    return KeyFate::kRefuse;
  }
  kid = member_text(key, "kid");
  const std::string kty = member_text(key, "kty"), crv = member_text(key, "crv"), alg = member_text(key, "alg"),
                    use = member_text(key, "use");
  const std::string named = kid.empty() ? std::string("a key without kid") : "kid \"" + kid + "\"";
  std::string fits;
  if (kty == "RSA")
    fits = "RS256";
  else if (kty == "EC" && crv == "P-256")
    fits = "ES256";
  else if (kty == "OKP" && crv == "Ed25519")
    fits = "EdDSA";
  const bool ours = alg == "RS256" || alg == "ES256" || alg == "EdDSA";
  if ((!use.empty() && use != "sig") || fits.empty() || (!alg.empty() && !ours)) {
    why = named + " (" +
          (!use.empty() && use != "sig" ? "use " + use
           : !alg.empty() && !ours      ? alg
                                        : kty + " " + crv) +
          ")";
    return KeyFate::kSkip;
  }
  if (!alg.empty() && alg != fits) {
    why = named + ": alg \"" + alg + "\" does not fit a " + kty + " key (expected " + fits + ")";
    return KeyFate::kRefuse;
  }
  if (kid.empty()) {
    why = "a " + fits + " key needs a \"kid\"";
    return KeyFate::kRefuse;
  }
  std::string problem;
  made = {fits, kty == "RSA" ? rsa_key(key, problem) : kty == "EC" ? ec_key(key, problem) : okp_key(key, problem)};
  if (!made.pkey) {
    why = named + ": " + problem;
    return KeyFate::kRefuse;
  }
  return KeyFate::kUse;
}

}  // namespace

std::optional<Jwks> Jwks::parse(std::string_view json, std::string &error) {
  std::optional<Jwks> jwks = parse_keys(json, error);
  ERR_clear_error();  // a refused key leaves its errors for the next OpenSSL user to misread
  return jwks;
}

std::optional<Jwks> Jwks::parse_keys(std::string_view json, std::string &error) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("keys") || !doc["keys"].IsArray()) {
    error = "not a JWKS: expected {\"keys\":[...]}";
    return std::nullopt;
  }
  Jwks jwks;
  std::size_t index = 0;
  for (const auto &key : doc["keys"].GetArray()) {
    std::string kid, why;
    JwksKey made;
    KeyFate fate = read_key(key, kid, made, why);
    if (fate == KeyFate::kUse && jwks.keys_.count(kid)) {
      why = "kid \"" + kid + "\" is there twice";
      fate = KeyFate::kRefuse;
    }
    if (fate == KeyFate::kRefuse) {
      error = "key " + std::to_string(index);
      error += ": ";
      error += why;
      return std::nullopt;
    }
    if (fate == KeyFate::kSkip)
      jwks.skipped_.push_back(why);
    else
      jwks.keys_.emplace(kid, std::move(made));
    index++;
  }
  if (jwks.keys_.empty()) {
    error = "no key duetd can use (RS256, ES256 on P-256, EdDSA on Ed25519)";
    for (const std::string &skipped : jwks.skipped_)
      error += (&skipped == &jwks.skipped_.front() ? "; skipped: " : ", ") + skipped;
    return std::nullopt;
  }
  return jwks;
}

std::optional<std::set<std::string, std::less<>>> Jwks::kids_in(std::string_view json) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("keys") || !doc["keys"].IsArray())
    return std::nullopt;
  std::set<std::string, std::less<>> kids;
  for (const auto &key : doc["keys"].GetArray())
    if (key.IsObject())
      kids.insert(member_text(key, "kid"));
  return kids;
}

std::size_t Jwks::keep_only(const std::set<std::string, std::less<>> &kids) {
  std::size_t dropped = 0;
  for (auto it = keys_.begin(); it != keys_.end();) {
    if (kids.count(it->first)) {
      ++it;
    } else {
      it = keys_.erase(it);
      dropped++;
    }
  }
  return dropped;
}

const JwksKey *Jwks::find(std::string_view kid) const {
  auto it = keys_.find(kid);
  return it == keys_.end() ? nullptr : &it->second;
}

}  // namespace duet::auth
