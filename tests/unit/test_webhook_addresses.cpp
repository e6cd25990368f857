// webhooks.allowed-addresses (plugins/webhooks/address_list.cpp): which
// addresses a webhook may be sent to; the refusal itself is
// tests/integration/test_webhooks.py's.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>

#include "webhooks/address_list.hpp"

using duet::webhooks::AddressList;

namespace {

sockaddr_storage address(const char *text) {
  sockaddr_storage ss{};
  auto *v4 = reinterpret_cast<sockaddr_in *>(&ss);
  auto *v6 = reinterpret_cast<sockaddr_in6 *>(&ss);
  if (inet_pton(AF_INET, text, &v4->sin_addr) == 1)
    v4->sin_family = AF_INET;
  else if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1)
    v6->sin6_family = AF_INET6;
  return ss;
}

bool allows(const AddressList &list, const char *text) {
  sockaddr_storage ss = address(text);
  return list.contains(reinterpret_cast<const sockaddr *>(&ss));
}

}  // namespace

TEST_CASE("ranges and single addresses, IPv4 and IPv6") {
  std::string why;
  auto list = AddressList::parse("10.0.0.0/8, 192.168.1.7 2001:db8::/32,::1,172.16.0.0/12", why);
  REQUIRE(list);
  CHECK(allows(*list, "10.1.2.3"));
  CHECK(allows(*list, "192.168.1.7"));
  CHECK_FALSE(allows(*list, "192.168.1.8"));
  CHECK(allows(*list, "172.31.255.255"));
  CHECK_FALSE(allows(*list, "172.32.0.1"));
  CHECK(allows(*list, "2001:db8:1::5"));
  CHECK_FALSE(allows(*list, "2001:db9::5"));
  CHECK(allows(*list, "::1"));
  CHECK(allows(*list, "::ffff:10.9.9.9"));  // a v4-mapped address is its IPv4 address
  CHECK_FALSE(allows(*list, "127.0.0.1"));
  CHECK_FALSE(allows(*list, "11.0.0.1"));
}

TEST_CASE("an empty list, and /0") {
  std::string why;
  auto none = AddressList::parse("", why);
  REQUIRE(none);
  CHECK(none->empty());
  auto all_v4 = AddressList::parse("0.0.0.0/0", why);
  REQUIRE(all_v4);
  CHECK(allows(*all_v4, "203.0.113.9"));
  CHECK_FALSE(allows(*all_v4, "2001:db8::1"));
}

TEST_CASE("a bad entry says which and why") {
  std::string why;
  CHECK_FALSE(AddressList::parse("10.0.0.0/8,hooks.example.org", why));
  CHECK_THAT(why, Catch::Contains("hooks.example.org") && Catch::Contains("not an IPv4 or IPv6 address"));
  CHECK_FALSE(AddressList::parse("10.0.0.0/33", why));
  CHECK_THAT(why, Catch::Contains("0-32"));
  CHECK_FALSE(AddressList::parse("::/129", why));
  CHECK_THAT(why, Catch::Contains("0-128"));
  CHECK_FALSE(AddressList::parse("10.0.0.0/x", why));
}
