// The header-only helpers every plugin shares: the duration and number
// parser, the secret-file reader and the UTF-8 check.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <string>

#include "duet/plugin.hpp"
#include "duet/utf8.h"

using std::chrono::milliseconds;

TEST_CASE("durations: seconds by default, or with a unit; nothing else") {
  CHECK(duet::parse_duration("30") == milliseconds(30000));
  CHECK(duet::parse_duration("0.05") == milliseconds(50));
  CHECK(duet::parse_duration("250ms") == milliseconds(250));
  CHECK(duet::parse_duration("90s") == milliseconds(90000));
  CHECK(duet::parse_duration("30m") == milliseconds(1800000));
  CHECK(duet::parse_duration("1h") == milliseconds(3600000));
  CHECK(duet::parse_duration("7d") == milliseconds(604800000));
  for (const char *bad : {"", "s", "ms", "-1", "+5", " 5", "5 s", "1e3", "nan", "inf", "0x10", "1.2.3", "5sec", "3 h"})
    CHECK_FALSE(duet::parse_duration(bad).has_value());
}

TEST_CASE("a secret file loses only its trailing whitespace") {
  const std::string path = "test_plugin_sdk_secret.txt";
  {
    std::ofstream f(path, std::ios::binary);
    f << " a secret with spaces \t\r\n\n";
  }
  CHECK(duet::read_trimmed_file(path) == " a secret with spaces");
  std::remove(path.c_str());
  CHECK_THROWS_AS(duet::read_trimmed_file(path), duet::EnvironmentError);
}

TEST_CASE("UTF-8: RFC 3629 only") {
  auto valid = [](const std::string &s) {
    return duet_utf8_valid(reinterpret_cast<const unsigned char *>(s.data()), s.size()) != 0;
  };
  CHECK(valid("plain ascii, long enough for the eight-byte path"));
  CHECK(valid("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));  // é € 😀
  CHECK(valid("\xED\x9F\xBF\xF4\x8F\xBF\xBF"));           // U+D7FF, U+10FFFF
  for (const char *bad : {"\xC0\xAF", "\xE0\x9F\xBF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xF0\x8F\xBF\xBF",
                          "\x80", "\xC3", "\xE2\x82", "\xF5\x80\x80\x80", "abcdefgh\xFF"})
    CHECK_FALSE(valid(bad));
}
