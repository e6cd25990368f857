// Message decoding: parsed once, type found, malformed input refused; JSON
// strings and error answers written whole and valid.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

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

namespace {
std::string escaped(const std::string &s, size_t out_size) {
  std::vector<char> out(out_size);
  size_t n = duet__json_escape(out.data(), out.size(), s.c_str());
  REQUIRE(n < out_size);
  REQUIRE(out[n] == '\0');
  return std::string(out.data(), n);
}

// Parses text as a JSON document {"s":<text>} with the core's own decoder
// (which refuses invalid UTF-8) and returns the string.
std::string parsed(const std::string &json_string) {
  std::string doc = "{\"s\":" + json_string + "}";
  duet_msg_t msg{};
  const char *why = nullptr;
  REQUIRE(duet__message_decode(doc.data(), doc.size(), &msg, &why) == 0);
  const char *out = nullptr;
  size_t len = 0;
  REQUIRE(duet__message_string(&msg, "/s", &out, &len) == 0);
  return std::string(out, len);
}
}  // namespace

TEST_CASE("json escaping cuts a long text to fit and still closes the string") {
  std::string text(600, 'x');
  std::string out = escaped(text, 512);
  CHECK(out.size() == 511);
  CHECK(parsed(out) == std::string(509, 'x'));
}

TEST_CASE("json escaping never cuts inside a multi-byte character or an escape") {
  for (size_t size = 3; size < 40; size++) {
    std::string out = escaped("\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\xb5 \"q\" \x01", size);
    std::string text = parsed(out);  // valid JSON and UTF-8 at every size
    CHECK(std::string("\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\xb5 \"q\" \x01").rfind(text, 0) == 0);
  }
}

TEST_CASE("json escaping turns bytes that are not UTF-8 into U+FFFD") {
  CHECK(escaped("a\xff" "b\xc3", 64) == "\"a\\ufffdb\\ufffd\"");
  CHECK(parsed(escaped("\xed\xa0\x80", 64)) == "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
}

namespace {
// The frame decoded by the core's own parser; returns its "message" text.
std::string error_message_of(const char *frame, size_t len) {
  duet_msg_t msg{};
  const char *why = nullptr;
  REQUIRE(duet__message_decode(frame, len, &msg, &why) == 0);
  CHECK(std::string(msg.type, msg.type_len) == "error");
  const char *out = nullptr;
  size_t out_len = 0;
  REQUIRE(duet__message_string(&msg, "/error/message", &out, &out_len) == 0);
  return std::string(out, out_len);
}
}  // namespace

TEST_CASE("an error answer with a 600-character message is still valid JSON") {
  char frame[DUET_ERROR_FRAME_MAX];
  std::string message(600, 'm');
  size_t n = duet__error_frame(frame, "too-large", message.c_str());
  std::string got = error_message_of(frame, n);
  CHECK(got.size() > 400);
  CHECK(message.rfind(got, 0) == 0);
}

TEST_CASE("an error answer cut where a multi-byte character falls stays valid UTF-8 JSON") {
  char frame[DUET_ERROR_FRAME_MAX];
  for (size_t pad = 0; pad < 4; pad++) {
    std::string message = std::string(pad, '.') + std::string();
    while (message.size() < 700)
      message += "\xe2\x82\xac";  // the euro sign, three bytes
    size_t n = duet__error_frame(frame, "code", message.c_str());
    CHECK(message.rfind(error_message_of(frame, n), 0) == 0);
  }
}

TEST_CASE("an error answer with a long code and a short message keeps both whole or cut cleanly") {
  char frame[DUET_ERROR_FRAME_MAX];
  std::string code(300, 'c');
  size_t n = duet__error_frame(frame, code.c_str(), "short \"quoted\" text");
  CHECK(error_message_of(frame, n) == "short \"quoted\" text");
}
