// Message decoding: parsed once, type found, malformed input refused.
#include <catch2/catch.hpp>

#include <string>

extern "C" {
#include "message.h"
}

namespace {
std::string type_of(const std::string &json) {
  duet_msg_t msg{};
  const char *why = nullptr;
  if (duet__message_decode(json.data(), json.size(), &msg, &why) != 0)
    return "error";
  return std::string(msg.type, msg.type_len);
}
}  // namespace

TEST_CASE("the type is the first member other than remote") {
  CHECK(type_of(R"({"open":{"local":"a","remote":"b"}})") == "open");
  CHECK(type_of(R"({"remote":"b","sdp":{"type":"offer"}})") == "sdp");
  CHECK(type_of(R"({"ice":{},"remote":"b"})") == "ice");
}

TEST_CASE("malformed messages are refused") {
  for (const char *bad : {"", "{", "[1]", "\"x\"", "{}", R"({"remote":"b"})", "{\"a\":1} x", "nul", "{\"a\":\"\xff\"}"})
    CHECK(type_of(bad) == "error");
}

TEST_CASE("text that is not well-formed UTF-8 is refused, anywhere in the message") {
  // Each is refused inside a string, and outside one.
  for (const char *bad : {"\xff", "\x80", "\xc0\xaf", "\xc1\xbf",          // stray byte, overlong 2-byte
                          "\xc3", "\xc3(", "\xe2\x82", "\xe2\x82(",         // truncated, bad continuation
                          "\xe0\x80\xaf", "\xed\xa0\x80", "\xed\xbf\xbf",  // overlong 3-byte, surrogates
                          "\xf0\x80\x80\xaf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",  // overlong 4, > U+10FFFF
                          "\xf8\x88\x80\x80\x80"}) {
    CAPTURE(bad);
    CHECK(type_of(std::string("{\"ping\":\"") + bad + "\"}") == "error");
    CHECK(type_of(std::string("{\"ping\":1}") + bad) == "error");
    // After eight ASCII bytes, where the fast path hands over.
    CHECK(type_of(std::string("{\"ping\":\"12345678") + bad + "\"}") == "error");
  }
}

TEST_CASE("every length of well-formed UTF-8 is accepted") {
  // U+007F, U+0080, U+07FF, U+0800, U+D7FF, U+E000, U+FFFF, U+10000, U+10FFFF.
  for (const char *good : {"\x7f", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf",
                           "\xee\x80\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf"}) {
    CAPTURE(good);
    CHECK(type_of(std::string("{\"ping\":\"") + good + "\"}") == "ping");
    CHECK(type_of(std::string("{\"ping\":\"1234567") + good + "abcdefgh\"}") == "ping");
  }
  CHECK(type_of("{\"ice\":\"h\xc3\xa9llo \xf0\x9f\x8e\x89 \xe6\x97\xa5\xe6\x9c\xac\"}") == "ice");
}

TEST_CASE("deep nesting is parsed without recursion") {
  std::string deep = "{\"a\":" + std::string(200000, '[') + std::string(200000, ']') + "}";
  CHECK(type_of(deep) == "a");
  std::string unbalanced = "{\"a\":" + std::string(200000, '[') + "}";
  CHECK(type_of(unbalanced) == "error");
}

TEST_CASE("string members are read by JSON pointer") {
  std::string json = R"({"open":{"local":"al~ice","remote":"b\"ob"},"x/y":{"0":"z"}})";
  duet_msg_t msg{};
  const char *why = nullptr;
  REQUIRE(duet__message_decode(json.data(), json.size(), &msg, &why) == 0);
  const char *out = nullptr;
  size_t len = 0;
  REQUIRE(duet__message_string(&msg, "/open/local", &out, &len) == 0);
  CHECK(std::string(out, len) == "al~ice");
  REQUIRE(duet__message_string(&msg, "/open/remote", &out, &len) == 0);
  CHECK(std::string(out, len) == "b\"ob");
  REQUIRE(duet__message_string(&msg, "/x~1y/0", &out, &len) == 0);
  CHECK(std::string(out, len) == "z");
  CHECK(duet__message_string(&msg, "/open/nothing", &out, &len) == DUET_ENOENT);
  CHECK(duet__message_string(&msg, "/open", &out, &len) == DUET_EINVAL);
}

TEST_CASE("a message's accessors stop working once the next is decoded") {
  std::string first = R"({"a":"1"})", second = R"({"b":"2"})";
  duet_msg_t m1{}, m2{};
  const char *why = nullptr;
  REQUIRE(duet__message_decode(first.data(), first.size(), &m1, &why) == 0);
  REQUIRE(duet__message_decode(second.data(), second.size(), &m2, &why) == 0);
  const char *out = nullptr;
  size_t len = 0;
  CHECK(duet__message_string(&m1, "/a", &out, &len) == DUET_EINVAL);
  CHECK(duet__message_string(&m2, "/b", &out, &len) == 0);
}

TEST_CASE("json escaping neutralises quotes and control characters") {
  char out[64];
  duet__json_escape(out, sizeof out, "a\"b\\c\nd\x01");
  CHECK(std::string(out) == R"("a\"b\\c\u000ad\u0001")");
}
