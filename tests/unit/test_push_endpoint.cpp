// Which push endpoints the ring plugin posts to (ring/push_endpoint.cpp):
// the URL rules, the host list, and the address ranges refused at connect
// time; and the base64url helpers of the SDK the push keys go through.
#include <catch2/catch.hpp>

#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "duet/util.hpp"
#include "ring/push_crypto.hpp"
#include "ring/push_endpoint.hpp"

using namespace duet::ring;

namespace {

bool is_public(const std::string &text) {
  sockaddr_in v4{};
  sockaddr_in6 v6{};
  v4.sin_family = AF_INET;
  v6.sin6_family = AF_INET6;
  if (inet_pton(AF_INET, text.c_str(), &v4.sin_addr) == 1)
    return public_address(reinterpret_cast<sockaddr *>(&v4));
  REQUIRE(inet_pton(AF_INET6, text.c_str(), &v6.sin6_addr) == 1);
  return public_address(reinterpret_cast<sockaddr *>(&v6));
}

}  // namespace

TEST_CASE("an endpoint is a plain https: URL; its origin is the VAPID audience") {
  auto e = parse_endpoint("https://FCM.googleapis.com/fcm/send/abc:def");
  REQUIRE(e);
  CHECK(e->origin == "https://fcm.googleapis.com");
  CHECK(e->host == "fcm.googleapis.com");
  e = parse_endpoint("https://push.example.net:8443/x?y");
  REQUIRE(e);
  CHECK(e->origin == "https://push.example.net:8443");
  e = parse_endpoint("https://Push.example.net:443/x");
  REQUIRE(e);
  CHECK(e->origin == "https://push.example.net");
  e = parse_endpoint("https://[2001:db8::1]:444/p");
  REQUIRE(e);
  CHECK(e->host == "2001:db8::1");
  CHECK(e->origin == "https://[2001:db8::1]:444");
  for (const char *bad :
       {"http://push.example.net/x", "https://", "https:///x", "https://user@push.example.net/",
        "https://push.example.net:0/", "https://push.example.net:65536/", "https://push.example.net:/",
        "https://push.example.net/a b", "https://[::1/x", "https://[zz::1]/x", "https://push_x.net/",
        "ftp://push.example.net/", "https://push.example.net\\@evil/"})
    CHECK_FALSE(parse_endpoint(bad));
  CHECK_FALSE(parse_endpoint("https://push.example.net/" + std::string(kMaxEndpointBytes, 'a')));
}

TEST_CASE("the push host list names hosts and, with a leading dot, their subdomains") {
  CHECK(host_allowed("anything.example", {}));
  const std::vector<std::string> allowed = {"fcm.googleapis.com", ".push.apple.com"};
  CHECK(host_allowed("fcm.googleapis.com", allowed));
  CHECK(host_allowed("web.push.apple.com", allowed));
  CHECK_FALSE(host_allowed("push.apple.com", allowed));
  CHECK_FALSE(host_allowed("evilpush.apple.com.attacker.org", allowed));
  CHECK_FALSE(host_allowed("xfcm.googleapis.com", allowed));
}

TEST_CASE("addresses inside the server's own networks are refused") {
  for (const char *inside : {"127.0.0.1",
                             "127.255.0.9",
                             "10.1.2.3",
                             "172.16.0.1",
                             "172.31.255.255",
                             "192.168.1.1",
                             "169.254.169.254",
                             "100.64.0.1",
                             "0.0.0.0",
                             "224.0.0.1",
                             "255.255.255.255",
                             "198.18.0.1",
                             "::1",
                             "::",
                             "fe80::1",
                             "fd00::1",
                             "fc00::5",
                             "ff02::1",
                             "::ffff:127.0.0.1",
                             "::ffff:10.0.0.1",
                             "64:ff9b::a9fe:a9fe",
                             "2002:7f00:1::",
                             "2001:db8::1",
                             "2001::1"})
    CHECK_FALSE(is_public(inside));
  for (const char *outside : {"8.8.8.8", "142.250.74.46", "172.32.0.1", "100.128.0.1", "2a00:1450:4001::200e",
                              "::ffff:8.8.8.8", "2002:0808:0808::"})
    CHECK(is_public(outside));
  CHECK(refused_literal("127.0.0.1"));
  CHECK(refused_literal("::1"));
  CHECK_FALSE(refused_literal("localhost"));  // a name: checked at connect time
  CHECK_FALSE(refused_literal("8.8.8.8"));
}

TEST_CASE("base64url round-trips and accepts only canonical text") {
  for (const std::string &bytes :
       {std::string(""), std::string("f"), std::string("fo"), std::string("foo"), std::string("\xff\xfe\x00\x01", 4)})
    CHECK(duet::from_base64url(duet::base64url(bytes)) == bytes);
  CHECK(duet::base64url("\xfb\xff") == "-_8");
  CHECK_FALSE(duet::from_base64url("Zg=="));  // no padding
  CHECK_FALSE(duet::from_base64url("Zh"));    // spare bits set
  CHECK_FALSE(duet::from_base64url("Z"));     // a lone last character
  CHECK_FALSE(duet::from_base64url("a+b/"));  // base64, not base64url
}

TEST_CASE("an encrypted push is one aes128gcm record with its header") {
  const std::string point = duet::from_base64url("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcx"
                                                 "aOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4")
                                .value();
  CHECK(valid_p256_public_key(point));
  std::string off_curve = point;
  off_curve[64] = static_cast<char>(off_curve[64] ^ 1);
  CHECK_FALSE(valid_p256_public_key(off_curve));
  CHECK_FALSE(valid_p256_public_key(point.substr(0, 64)));
  const std::string auth(16, 'a');
  const std::string body = encrypt_push(point, auth, "hello");
  // salt 16, record size 4, key id length 1, key id 65, then 5 + 1 + 16.
  CHECK(body.size() == 16 + 4 + 1 + 65 + 5 + 1 + 16);
  CHECK(body.substr(16, 4) == std::string("\x00\x00\x10\x00", 4));
  CHECK(static_cast<unsigned char>(body[20]) == 65);
  CHECK(body[21] == '\x04');
  CHECK(encrypt_push(point, auth, "hello") != body);  // a fresh salt and key each time
  CHECK_THROWS_AS(encrypt_push(off_curve, auth, "x"), CryptoError);
  CHECK_THROWS_AS(encrypt_push(point, "short", "x"), CryptoError);
  CHECK_THROWS_AS(encrypt_push(point, auth, std::string(kMaxPushPlaintext + 1, 'x')), CryptoError);
}
