// General helpers of the duet plugin SDK, usable without the ABI: the two
// exceptions a plugin's init may throw, parsing of numbers, durations and
// secret files with the rules duetd's options use, base64url, and duetd's
// default state folder (for a plugin's command, which runs without duetd).
#ifndef DUET_UTIL_HPP
#define DUET_UTIL_HPP

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace duet {

// A bad option value: thrown from init, duetd exits with code 2.
class OptionError : public std::invalid_argument {
public:
  using std::invalid_argument::invalid_argument;
};

// A failure of the environment (a file, a timer): thrown from init, duetd
// exits with code 1. Any exception but OptionError does the same.
class EnvironmentError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// A plain decimal number ("30", "0.25"): no sign, exponent, hex, inf or nan,
// and no dependence on the C locale's decimal point.
inline std::optional<double> parse_decimal(std::string_view text) {
  if (text.empty() || text.find_first_not_of("0123456789.") != std::string_view::npos)
    return std::nullopt;
  double value = 0;
  const char *end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value, std::chars_format::fixed);
  if (ec != std::errc() || ptr != end)
    return std::nullopt;
  return value;
}

// A duration: a plain decimal number of seconds, or one followed by ms, s,
// m, h or d ("30", "0.5", "250ms", "90s", "30m", "1h", "7d"), in whole
// milliseconds (rounded). nullopt when it is none of these.
inline std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  static constexpr std::pair<std::string_view, double> kUnits[] = {
      {"ms", 0.001}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}};
  double unit = 1;
  for (const auto &[suffix, seconds] : kUnits)
    if (text.size() > suffix.size() && text.substr(text.size() - suffix.size()) == suffix) {
      text.remove_suffix(suffix.size());
      unit = seconds;
      break;
    }
  const std::optional<double> number = parse_decimal(text);
  if (!number || *number * unit > 1e12)
    return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(*number * unit * 1000.0)));
}

// A file's contents without trailing whitespace (the newline an editor or
// `echo` leaves). Throws EnvironmentError naming the file when unreadable.
inline std::string read_trimmed_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw EnvironmentError("cannot read " + path + ": " + std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad())
    throw EnvironmentError("cannot read " + path + ": " + std::strerror(errno));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' || text.back() == '\t'))
    text.pop_back();
  return text;
}

// Base64url without padding (RFC 4648 section 5), as tokens and Web Push
// keys are written.
inline std::string base64url(std::string_view bytes) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += alphabet[(acc >> bits) & 63];
    }
  }
  if (bits > 0)
    out += alphabet[(acc << (6 - bits)) & 63];
  return out;
}

// The bytes of unpadded base64url text, or nullopt. Only canonical text
// decodes (no '=' either): no lone last character and the
// spare bits zero, so bytes have one text (a signed token cannot be varied
// into others that verify too).
inline std::optional<std::string> from_base64url(std::string_view text) {
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '-'             ? 62
            : c == '_'             ? 63
                                   : -1;
    if (v < 0)
      return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if (bits >= 6 || (acc & ((1U << bits) - 1)) != 0)
    return std::nullopt;
  return out;
}

// The state folder duetd uses without --state-dir: $STATE_DIRECTORY
// (systemd), else $XDG_STATE_HOME/duet, else ~/.local/state/duet, else
// /var/lib/duet. A running plugin asks duetd instead (Host::node_info).
inline std::string default_state_dir() {
  const char *systemd = std::getenv("STATE_DIRECTORY");
  const char *xdg = std::getenv("XDG_STATE_HOME");
  const char *home = std::getenv("HOME");
  if (systemd && *systemd)
    return systemd;
  if (xdg && *xdg == '/')
    return std::string(xdg) + "/duet";
  if (home && *home == '/')
    return std::string(home) + "/.local/state/duet";
  return "/var/lib/duet";
}

}  // namespace duet

#endif  // DUET_UTIL_HPP
