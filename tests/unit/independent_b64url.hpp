// base64url without padding for the token tests, written independently of
// the code under test (OpenSSL's standard base64, then the alphabet's two
// substitutions), so that a mistake in duet::base64url cannot hide itself.
#pragma once

#include <string>

#include <openssl/evp.h>

inline std::string independent_b64url(const std::string &in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                          reinterpret_cast<const unsigned char *>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=')
    out.pop_back();
  for (char &c : out)
    c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}
