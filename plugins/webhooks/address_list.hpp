// Which addresses the webhook host may resolve to (webhooks.allowed-addresses):
// the events carry who called whom, so a changed DNS answer must not send
// them to some other machine. Each connection's address is checked before
// it is made (common/http_client's address_allowed).
#pragma once

#include <sys/socket.h>

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace duet::webhooks {

class AddressList {
public:
  // "10.0.0.0/8, 192.168.1.7, 2001:db8::/32, ::1": addresses or CIDR
  // ranges, separated by commas or spaces. nullopt, with why, for a bad one.
  static std::optional<AddressList> parse(std::string_view text, std::string &why);

  bool empty() const { return ranges_.empty(); }
  bool contains(const sockaddr *address) const;

private:
  struct Range {
    int family;                           // AF_INET or AF_INET6
    std::array<unsigned char, 16> bytes;  // network order, the first 4 for IPv4
    int prefix;                           // bits that must match
  };
  std::vector<Range> ranges_;
};

}  // namespace duet::webhooks
