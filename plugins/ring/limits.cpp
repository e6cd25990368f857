#include "limits.hpp"

#include <cstring>

#include <arpa/inet.h>
#include <netinet/in.h>

namespace duet::ring {

std::string address_key(const std::string &address) {
  in6_addr a{};
  if (address.find(':') == std::string::npos || inet_pton(AF_INET6, address.c_str(), &a) != 1)
    return address;
  static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(a.s6_addr, v4_mapped, sizeof v4_mapped) == 0)
    return address;  // an IPv4 client on a dual-stack socket: its own address
  std::memset(a.s6_addr + 8, 0, 8);
  char text[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, &a, text, sizeof text);
  return std::string(text) + "/64";
}

bool WindowLimit::allow(const std::string &key, std::int64_t now_ms) {
  auto it = windows_.find(key);
  if (it == windows_.end()) {
    if (windows_.size() >= max_keys_)
      prune(now_ms);
    if (windows_.size() >= max_keys_)
      return false;
    it = windows_.emplace(key, Window{now_ms, 0}).first;
  }
  Window &w = it->second;
  if (now_ms - w.start_ms >= window_ms_)
    w = {now_ms, 0};
  if (w.count >= max_)
    return false;
  w.count++;
  return true;
}

void WindowLimit::prune(std::int64_t now_ms) {
  for (auto it = windows_.begin(); it != windows_.end();)
    it = now_ms - it->second.start_ms >= window_ms_ ? windows_.erase(it) : std::next(it);
}

}  // namespace duet::ring
