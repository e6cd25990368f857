// Which connections are devices waiting for rings, of which line: a device
// attaches with its secret (line-attach, or by making or joining a line) and
// stays attached until its connection closes or it is removed.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "store.hpp"

namespace duet::ring {

using ConnId = std::uint64_t;

class Attachments {
public:
  struct Entry {
    LineKey line;
    std::string device;
  };

  void attach(ConnId conn, LineKey line, const std::string &device) {
    detach(conn);
    by_conn_[conn] = {line, device};
    by_line_[line].insert(conn);
  }
  void detach(ConnId conn) {
    auto it = by_conn_.find(conn);
    if (it == by_conn_.end())
      return;
    auto line = by_line_.find(it->second.line);
    line->second.erase(conn);
    if (line->second.empty())
      by_line_.erase(line);
    by_conn_.erase(it);
  }
  const Entry *of(ConnId conn) const {
    auto it = by_conn_.find(conn);
    return it == by_conn_.end() ? nullptr : &it->second;
  }
  // A copy: callers send to them, and a send may not change the set, but a
  // copy keeps that from mattering.
  std::vector<ConnId> on_line(LineKey line) const {
    auto it = by_line_.find(line);
    return it == by_line_.end() ? std::vector<ConnId>() : std::vector<ConnId>(it->second.begin(), it->second.end());
  }
  std::size_t size() const { return by_conn_.size(); }
  // Whether another connection here is the same device of line.
  bool open_here(LineKey line, const std::string &device) const {
    for (ConnId c : on_line(line))
      if (by_conn_.at(c).device == device)
        return true;
    return false;
  }
  template <class Fn> void each(Fn fn) const {
    for (const auto &[conn, entry] : by_conn_)
      fn(conn, entry);
  }

private:
  std::unordered_map<ConnId, Entry> by_conn_;
  std::unordered_map<LineKey, std::set<ConnId>> by_line_;
};

}  // namespace duet::ring
