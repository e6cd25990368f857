#include "timing_wheel.hpp"

namespace duet::keepalive {

WheelNode::~WheelNode() {
  if (wheel_)
    wheel_->remove(*this);
}

TimingWheel::TimingWheel(std::size_t slots) {
  if (slots == 0)
    throw std::invalid_argument("a timing wheel needs at least one slot");
  heads_.resize(slots);
  for (WheelLink &head : heads_)
    head.prev = head.next = &head;
  visiting_.prev = visiting_.next = &visiting_;
}

TimingWheel::~TimingWheel() {
  for (WheelLink &head : heads_)
    while (head.next != &head)
      remove(node_of(*head.next));
}

void TimingWheel::insert(WheelNode &node) {
  if (node.wheel_)
    node.wheel_->remove(node);
  link_before(heads_[current_], node);
  node.wheel_ = this;
  size_++;
}

void TimingWheel::remove(WheelNode &node) {
  if (node.wheel_ != this)
    return;
  unlink(node);
  node.wheel_ = nullptr;
  size_--;
}

void TimingWheel::link_before(WheelLink &head, WheelLink &link) {
  link.prev = head.prev;
  link.next = &head;
  head.prev->next = &link;
  head.prev = &link;
}

void TimingWheel::unlink(WheelLink &link) {
  link.prev->next = link.next;
  link.next->prev = link.prev;
  link.prev = link.next = nullptr;
}

void TimingWheel::splice(WheelLink &from, WheelLink &to) {
  if (from.next == &from)
    return;
  WheelLink *first = from.next;
  WheelLink *last = from.prev;
  first->prev = to.prev;
  to.prev->next = first;
  last->next = &to;
  to.prev = last;
  from.prev = from.next = &from;
}

}  // namespace duet::keepalive
