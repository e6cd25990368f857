#include "limits.hpp"

namespace duet::ring {

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
