// Which push endpoints duetd will POST to. An endpoint is a URL a browser
// gave, so anyone who can make a line chooses it: only https: URLs, only to
// the allowed push hosts (when the operator names them), and never to an
// address inside the server's own networks (loopback, private, link-local
// and the like), checked on every address a name resolves to, at connect
// time, so a name that resolves differently later is caught too.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct sockaddr;

namespace duet::ring {

struct Endpoint {
  std::string origin;  // "https://host[:port]": the VAPID audience
  std::string host;    // lowercase; an IPv6 literal without brackets
};

// The longest endpoint accepted; the big push services use about 500 bytes.
constexpr std::size_t kMaxEndpointBytes = 1024;

// The endpoint's origin and host, or nullopt when url is not a plain
// https: URL (userinfo, control characters, spaces or a bad port refused).
std::optional<Endpoint> parse_endpoint(std::string_view url);

// True when host is one of allowed: "push.example.net" matches itself,
// ".example.net" any name under example.net. An empty list allows all.
bool host_allowed(const std::string &host, const std::vector<std::string> &allowed);

// True for an address on the public Internet; false for loopback,
// private, shared (CGNAT), link-local, unspecified, multicast, broadcast,
// documentation and reserved ranges, in IPv4, IPv6, and IPv4 mapped into
// or translated by IPv6.
bool public_address(const struct sockaddr *address);

// True when host is an IP literal that public_address refuses.
bool refused_literal(const std::string &host);

}  // namespace duet::ring
