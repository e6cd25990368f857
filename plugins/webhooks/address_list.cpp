#include "address_list.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>

namespace duet::webhooks {

namespace {

bool prefix_matches(const unsigned char *a, const unsigned char *b, int bits) {
  const int whole = bits / 8;
  if (std::memcmp(a, b, static_cast<std::size_t>(whole)) != 0)
    return false;
  if (bits % 8 == 0)
    return true;
  const unsigned mask = (0xffU << (8 - bits % 8)) & 0xffU;
  return (a[whole] & mask) == (b[whole] & mask);
}

}  // namespace

std::optional<AddressList> AddressList::parse(std::string_view text, std::string &why) {
  AddressList list;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t end = text.find_first_of(", ", at);
    const std::string_view item = text.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
    at = end == std::string_view::npos ? text.size() : end + 1;
    if (item.empty())
      continue;
    const std::size_t slash = item.find('/');
    const std::string host(item.substr(0, slash));
    Range r{};
    if (inet_pton(AF_INET, host.c_str(), r.bytes.data()) == 1)
      r.family = AF_INET;
    else if (inet_pton(AF_INET6, host.c_str(), r.bytes.data()) == 1)
      r.family = AF_INET6;
    else {
      why = "'" + std::string(item) + "' is not an IPv4 or IPv6 address (names are not taken: give addresses)";
      return std::nullopt;
    }
    const int max = r.family == AF_INET ? 32 : 128;
    r.prefix = max;
    if (slash != std::string_view::npos) {
      const std::string_view bits = item.substr(slash + 1);
      auto [stop, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), r.prefix);
      if (ec != std::errc() || stop != bits.data() + bits.size() || r.prefix < 0 || r.prefix > max) {
        why = "'" + std::string(item) + "': the prefix length must be 0-" + std::to_string(max);
        return std::nullopt;
      }
    }
    list.ranges_.push_back(r);
  }
  return list;
}

bool AddressList::contains(const sockaddr *address) const {
  const unsigned char *bytes = nullptr;
  int family = address->sa_family;
  unsigned char mapped[4];
  if (family == AF_INET) {
    bytes = reinterpret_cast<const unsigned char *>(&reinterpret_cast<const sockaddr_in *>(address)->sin_addr);
  } else if (family == AF_INET6) {
    const in6_addr &a6 = reinterpret_cast<const sockaddr_in6 *>(address)->sin6_addr;
    bytes = a6.s6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {  // ::ffff:10.0.0.1 is 10.0.0.1
      std::memcpy(mapped, a6.s6_addr + 12, 4);
      bytes = mapped;
      family = AF_INET;
    }
  } else {
    return false;
  }
  for (const Range &r : ranges_)
    if (r.family == family && prefix_matches(bytes, r.bytes.data(), r.prefix))
      return true;
  return false;
}

}  // namespace duet::webhooks
