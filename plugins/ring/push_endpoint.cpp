#include "push_endpoint.hpp"

#include <cstdint>
#include <cstring>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace duet::ring {

namespace {

bool public_v4(std::uint32_t a) {  // host byte order
  const auto in = [a](std::uint32_t net, int bits) { return (a >> (32 - bits)) == (net >> (32 - bits)); };
  return !(in(0x00000000, 8)       // "this network"
           || in(0x0a000000, 8)    // private
           || in(0x64400000, 10)   // shared address space (CGNAT)
           || in(0x7f000000, 8)    // loopback
           || in(0xa9fe0000, 16)   // link-local
           || in(0xac100000, 12)   // private
           || in(0xc0000000, 24)   // IETF protocol assignments
           || in(0xc0000200, 24)   // documentation
           || in(0xc0a80000, 16)   // private
           || in(0xc6120000, 15)   // benchmarking
           || in(0xc6336400, 24)   // documentation
           || in(0xcb007100, 24)   // documentation
           || in(0xe0000000, 4)    // multicast
           || in(0xf0000000, 4));  // reserved, broadcast
}

bool public_v6(const unsigned char *b) {
  static const unsigned char zero[16] = {};
  const auto prefix = [b](std::initializer_list<unsigned char> bytes) {
    return std::memcmp(b, bytes.begin(), bytes.size()) == 0;
  };
  const auto v4_at = [b](int i) {
    return static_cast<std::uint32_t>(b[i]) << 24 | static_cast<std::uint32_t>(b[i + 1]) << 16 |
           static_cast<std::uint32_t>(b[i + 2]) << 8 | b[i + 3];
  };
  if (std::memcmp(b, zero, 15) == 0 && b[15] <= 1)  // unspecified, loopback
    return false;
  if (prefix({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}) ||   // IPv4-mapped
      prefix({0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0}))  // NAT64 well-known prefix
    return public_v4(v4_at(12));
  if (prefix({0x20, 0x02}))  // 6to4: the IPv4 address it carries
    return public_v4(v4_at(2));
  return !((b[0] & 0xfe) == 0xfc                       // unique local
           || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)  // link-local
           || (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)  // site-local (deprecated)
           || b[0] == 0xff                             // multicast
           || prefix({0x20, 0x01, 0x0d, 0xb8})         // documentation
           || prefix({0x01, 0, 0, 0, 0, 0, 0, 0})      // discard
           || prefix({0x20, 0x01, 0, 0}));             // Teredo: carries addresses we cannot vet
}

bool valid_port(std::string_view port) {
  if (port.empty() || port.size() > 5)
    return false;
  unsigned n = 0;
  for (char c : port) {
    if (c < '0' || c > '9')
      return false;
    n = n * 10 + static_cast<unsigned>(c - '0');
  }
  return n >= 1 && n <= 65535;
}

}  // namespace

std::optional<Endpoint> parse_endpoint(std::string_view url) {
  constexpr std::string_view scheme = "https://";
  if (url.size() > kMaxEndpointBytes || url.substr(0, scheme.size()) != scheme)
    return std::nullopt;
  for (unsigned char c : url)
    if (c <= 0x20 || c >= 0x7f || c == '\\')
      return std::nullopt;
  const std::string_view rest = url.substr(scheme.size());
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.empty() || authority.find('@') != std::string_view::npos)
    return std::nullopt;
  Endpoint e;
  std::string_view host = authority, port;
  if (authority[0] == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos)
      return std::nullopt;
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after[0] != ':')
      return std::nullopt;
    port = after.empty() ? std::string_view() : after.substr(1);
    in6_addr a6{};
    if (inet_pton(AF_INET6, std::string(host).c_str(), &a6) != 1)
      return std::nullopt;
  } else if (const auto colon = authority.find(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty() || (authority.find(':') != std::string_view::npos && !valid_port(port)))
    return std::nullopt;
  for (char c : host)
    e.host += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  for (char c : e.host)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == ':'))
      return std::nullopt;
  // The origin as RFC 6454 serializes it: lowercase, no default port.
  std::string lower_authority;
  for (char c : port == "443" ? authority.substr(0, authority.size() - 4) : authority)
    lower_authority += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  e.origin = "https://" + lower_authority;
  return e;
}

bool host_allowed(const std::string &host, const std::vector<std::string> &allowed) {
  if (allowed.empty())
    return true;
  for (const std::string &a : allowed) {
    if (a == host)
      return true;
    if (!a.empty() && a[0] == '.' && host.size() > a.size() && host.compare(host.size() - a.size(), a.size(), a) == 0)
      return true;
  }
  return false;
}

bool public_address(const struct sockaddr *address) {
  if (address->sa_family == AF_INET)
    return public_v4(ntohl(reinterpret_cast<const sockaddr_in *>(address)->sin_addr.s_addr));
  if (address->sa_family == AF_INET6)
    return public_v6(reinterpret_cast<const sockaddr_in6 *>(address)->sin6_addr.s6_addr);
  return false;
}

bool refused_literal(const std::string &host) {
  sockaddr_in v4{};
  sockaddr_in6 v6{};
  v4.sin_family = AF_INET;
  v6.sin6_family = AF_INET6;
  if (inet_pton(AF_INET, host.c_str(), &v4.sin_addr) == 1)
    return !public_address(reinterpret_cast<sockaddr *>(&v4));
  if (inet_pton(AF_INET6, host.c_str(), &v6.sin6_addr) == 1)
    return !public_address(reinterpret_cast<sockaddr *>(&v6));
  return false;
}

}  // namespace duet::ring
