// A hashed timing wheel that visits each member once per revolution, free of
// any I/O so it can be tested alone. The keepalive plugin turns it one slot
// per timer tick, so each connection costs O(1) per keepalive interval instead
// of every tick scanning every connection.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <vector>

namespace duet::keepalive {

// The two pointers of a circular doubly-linked list. Each slot has a head
// that links to itself when the slot is empty, so unlinking a member never
// needs to know which list it is in.
struct WheelLink {
  WheelLink *prev = nullptr;
  WheelLink *next = nullptr;
};

class TimingWheel;

// Derive from WheelNode to make an object a possible member of a wheel. A
// node leaves its wheel when it is destroyed, so freeing a member is always
// safe, even in the middle of a visit.
class WheelNode : private WheelLink {
public:
  WheelNode() = default;
  WheelNode(const WheelNode &) = delete;
  WheelNode &operator=(const WheelNode &) = delete;
  ~WheelNode();

  bool in_wheel() const { return wheel_ != nullptr; }

private:
  friend class TimingWheel;
  TimingWheel *wheel_ = nullptr;
};

class TimingWheel {
public:
  // Throws std::invalid_argument when slots is 0.
  explicit TimingWheel(std::size_t slots);
  // Members stay alive; they are only released from the wheel.
  ~TimingWheel();
  // Members point at the slot heads, so the wheel stays where it was built.
  TimingWheel(const TimingWheel &) = delete;
  TimingWheel &operator=(const TimingWheel &) = delete;

  // Adds node to the slot visited last, so its first visit comes exactly
  // slots() advances from now. A node already in this wheel moves; a node in
  // another wheel leaves that one first. O(1).
  void insert(WheelNode &node);
  // Takes node out of the wheel; does nothing unless it is in this wheel. O(1).
  void remove(WheelNode &node);

  // Moves to the next slot and calls visit(WheelNode &) for each of its
  // members, which stay in that slot for the next revolution. visit may
  // remove, insert or destroy any member (including the one it is given, but
  // then it must not touch it afterwards). Not reentrant: calling advance
  // from visit throws std::logic_error.
  template <class Visit> void advance(Visit &&visit);

  std::size_t slots() const { return heads_.size(); }
  // How many members the wheel has.
  std::size_t size() const { return size_; }
  // The slot advance visited last (0 before the first advance).
  std::size_t current_slot() const { return current_; }

private:
  static void link_before(WheelLink &head, WheelLink &link);
  static void unlink(WheelLink &link);
  // Moves every member of from to the end of to, keeping their order.
  static void splice(WheelLink &from, WheelLink &to);
  static WheelNode &node_of(WheelLink &link) { return static_cast<WheelNode &>(link); }

  std::vector<WheelLink> heads_;
  // The members of the slot being visited that have not been visited yet.
  WheelLink visiting_;
  std::size_t current_ = 0;
  std::size_t size_ = 0;
  bool advancing_ = false;
};

template <class Visit> void TimingWheel::advance(Visit &&visit) {
  if (advancing_)
    throw std::logic_error("TimingWheel::advance called from inside its own visit");
  advancing_ = true;
  current_ = (current_ + 1) % heads_.size();
  WheelLink &head = heads_[current_];
  // Visiting from a detached list lets visit change the slot (or free the
  // next member) without the loop losing its place.
  splice(head, visiting_);
  try {
    while (visiting_.next != &visiting_) {
      WheelLink &link = *visiting_.next;
      unlink(link);
      link_before(head, link);
      visit(node_of(link));
    }
  } catch (...) {
    // Members not yet visited keep their slot; they are visited next time.
    splice(visiting_, head);
    advancing_ = false;
    throw;
  }
  advancing_ = false;
}

}  // namespace duet::keepalive
