// The keepalive plugin's timing wheel, checked without any host or timers:
// advance() stands in for one timer tick.
#include <catch2/catch.hpp>

#include <algorithm>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <vector>

#include "timing_wheel.hpp"

using duet::keepalive::TimingWheel;
using duet::keepalive::WheelNode;

namespace {

struct Item : WheelNode {
  explicit Item(int item_id) : id(item_id) {}
  int id;
};

// The ids of the members one advance visits, in visiting order.
std::vector<int> advance_once(TimingWheel &wheel) {
  std::vector<int> seen;
  wheel.advance([&](WheelNode &node) { seen.push_back(static_cast<Item &>(node).id); });
  return seen;
}

// How many advances until item is first visited (0 if never within limit).
int advances_until_visit(TimingWheel &wheel, int id, int limit) {
  for (int i = 1; i <= limit; i++)
    for (int seen : advance_once(wheel))
      if (seen == id)
        return i;
  return 0;
}

}  // namespace

TEST_CASE("a wheel needs at least one slot") {
  CHECK_THROWS_AS(TimingWheel(0), std::invalid_argument);
  TimingWheel wheel(1);
  CHECK(wheel.slots() == 1);
  CHECK(wheel.size() == 0);
}

TEST_CASE("a member inserted before any advance is first visited after exactly one revolution") {
  TimingWheel wheel(10);
  Item item(1);
  wheel.insert(item);
  CHECK(item.in_wheel());
  CHECK(wheel.size() == 1);
  CHECK(advances_until_visit(wheel, 1, 30) == 10);
}

TEST_CASE("a member inserted between advances is first visited one revolution later") {
  TimingWheel wheel(8);
  for (int i = 0; i < 5; i++)
    advance_once(wheel);
  Item item(7);
  wheel.insert(item);
  CHECK(advances_until_visit(wheel, 7, 30) == 8);
}

TEST_CASE("each member is visited once per revolution, on the same tick of every revolution") {
  TimingWheel wheel(5);
  std::vector<std::unique_ptr<Item>> items;
  // Insert one member after each advance so every slot gets one.
  for (int i = 0; i < 5; i++) {
    items.push_back(std::make_unique<Item>(i));
    wheel.insert(*items.back());
    advance_once(wheel);
  }
  std::map<int, std::vector<int>> visits;  // id -> the advances that visited it
  for (int tick = 0; tick < 50; tick++)
    for (int id : advance_once(wheel))
      visits[id].push_back(tick);
  REQUIRE(visits.size() == 5);
  for (auto &[id, ticks] : visits) {
    CHECK(ticks.size() == 10);
    for (std::size_t k = 1; k < ticks.size(); k++)
      CHECK(ticks[k] - ticks[k - 1] == 5);
  }
}

TEST_CASE("members inserted between different advances land in different slots") {
  TimingWheel wheel(4);
  Item a(1), b(2), c(3), d(4);
  wheel.insert(a);
  advance_once(wheel);
  wheel.insert(b);
  advance_once(wheel);
  wheel.insert(c);
  wheel.insert(d);
  // Each advance visits only the members of its own slot.
  CHECK(advance_once(wheel).empty());
  CHECK(advance_once(wheel) == std::vector<int>{1});
  CHECK(advance_once(wheel) == std::vector<int>{2});
  CHECK(advance_once(wheel) == std::vector<int>{3, 4});
  CHECK(advance_once(wheel).empty());
}

TEST_CASE("a one-slot wheel visits every member on every advance") {
  TimingWheel wheel(1);
  Item a(1), b(2);
  wheel.insert(a);
  wheel.insert(b);
  CHECK(advance_once(wheel) == std::vector<int>{1, 2});
  CHECK(advance_once(wheel) == std::vector<int>{1, 2});
}

TEST_CASE("a removed member is no longer visited and removing it twice is harmless") {
  TimingWheel wheel(3);
  Item a(1), b(2);
  wheel.insert(a);
  wheel.insert(b);
  wheel.remove(a);
  CHECK_FALSE(a.in_wheel());
  CHECK(wheel.size() == 1);
  wheel.remove(a);
  CHECK(wheel.size() == 1);
  for (int i = 0; i < 2; i++)
    CHECK(advance_once(wheel).empty());
  CHECK(advance_once(wheel) == std::vector<int>{2});
}

TEST_CASE("removing a member through another wheel leaves it where it is") {
  TimingWheel first(2), second(2);
  Item item(1);
  first.insert(item);
  second.remove(item);
  CHECK(item.in_wheel());
  CHECK(first.size() == 1);
  CHECK(second.size() == 0);
}

TEST_CASE("inserting a member again moves it to the slot visited last") {
  TimingWheel wheel(4);
  Item item(1);
  wheel.insert(item);
  advance_once(wheel);
  advance_once(wheel);
  wheel.insert(item);
  CHECK(wheel.size() == 1);
  CHECK(advances_until_visit(wheel, 1, 20) == 4);
}

TEST_CASE("inserting a member of another wheel takes it out of that wheel") {
  TimingWheel first(2), second(2);
  Item item(1);
  first.insert(item);
  second.insert(item);
  CHECK(first.size() == 0);
  CHECK(second.size() == 1);
  CHECK(advance_once(first).empty());
  CHECK(advance_once(first).empty());
}

TEST_CASE("a visit may remove the member it is given") {
  TimingWheel wheel(1);
  Item a(1), b(2), c(3);
  wheel.insert(a);
  wheel.insert(b);
  wheel.insert(c);
  std::vector<int> seen;
  wheel.advance([&](WheelNode &node) {
    seen.push_back(static_cast<Item &>(node).id);
    if (static_cast<Item &>(node).id == 2)
      wheel.remove(node);
  });
  CHECK(seen == std::vector<int>{1, 2, 3});
  CHECK(wheel.size() == 2);
  CHECK(advance_once(wheel) == std::vector<int>{1, 3});
}

TEST_CASE("a visit may destroy the member it is given") {
  TimingWheel wheel(1);
  std::map<int, std::unique_ptr<Item>> owned;
  for (int id = 1; id <= 3; id++) {
    owned[id] = std::make_unique<Item>(id);
    wheel.insert(*owned[id]);
  }
  std::vector<int> seen;
  wheel.advance([&](WheelNode &node) {
    int id = static_cast<Item &>(node).id;
    seen.push_back(id);
    if (id == 1)
      owned.erase(id);  // The way on_close frees a connection closed during its visit.
  });
  CHECK(seen == std::vector<int>{1, 2, 3});
  CHECK(wheel.size() == 2);
  CHECK(advance_once(wheel) == std::vector<int>{2, 3});
}

TEST_CASE("a visit may destroy a member of the same slot that is still waiting for its visit") {
  TimingWheel wheel(1);
  std::map<int, std::unique_ptr<Item>> owned;
  for (int id = 1; id <= 3; id++) {
    owned[id] = std::make_unique<Item>(id);
    wheel.insert(*owned[id]);
  }
  std::vector<int> seen;
  wheel.advance([&](WheelNode &node) {
    int id = static_cast<Item &>(node).id;
    seen.push_back(id);
    if (id == 1)
      owned.erase(2);
  });
  CHECK(seen == std::vector<int>{1, 3});
  CHECK(wheel.size() == 2);
}

TEST_CASE("a member inserted during a visit waits a full revolution") {
  TimingWheel wheel(3);
  Item a(1), newcomer(2);
  wheel.insert(a);
  advance_once(wheel);
  advance_once(wheel);
  wheel.advance([&](WheelNode &) { wheel.insert(newcomer); });
  CHECK(advance_once(wheel).empty());
  CHECK(advance_once(wheel).empty());
  CHECK(advance_once(wheel) == std::vector<int>{1, 2});
}

TEST_CASE("a destroyed member leaves its wheel") {
  TimingWheel wheel(2);
  Item kept(1);
  wheel.insert(kept);
  {
    Item temporary(2);
    wheel.insert(temporary);
    CHECK(wheel.size() == 2);
  }
  CHECK(wheel.size() == 1);
  advance_once(wheel);
  CHECK(advance_once(wheel) == std::vector<int>{1});
}

TEST_CASE("a destroyed wheel releases its members, which can then be destroyed safely") {
  auto item = std::make_unique<Item>(1);
  {
    TimingWheel wheel(2);
    wheel.insert(*item);
  }
  CHECK_FALSE(item->in_wheel());
  item.reset();
}

TEST_CASE("an exception from a visit keeps the members not yet visited in their slot") {
  TimingWheel wheel(2);
  Item a(1), b(2), c(3);
  wheel.insert(a);
  wheel.insert(b);
  wheel.insert(c);
  advance_once(wheel);
  CHECK_THROWS_AS(wheel.advance([](WheelNode &node) {
    if (static_cast<Item &>(node).id == 2)
      throw std::runtime_error("visit failed");
  }),
                  std::runtime_error);
  CHECK(wheel.size() == 3);
  advance_once(wheel);
  auto seen = advance_once(wheel);
  std::sort(seen.begin(), seen.end());
  CHECK(seen == std::vector<int>{1, 2, 3});
}

TEST_CASE("advancing from inside a visit is refused") {
  TimingWheel wheel(1);
  Item a(1);
  wheel.insert(a);
  CHECK_THROWS_AS(wheel.advance([&](WheelNode &) { advance_once(wheel); }), std::logic_error);
  // The wheel still works afterwards.
  CHECK(advance_once(wheel) == std::vector<int>{1});
}

TEST_CASE("under random inserts and removals every member is visited exactly once per revolution") {
  constexpr int kSlots = 7;
  TimingWheel wheel(kSlots);
  std::mt19937 random(12345);
  std::map<int, std::unique_ptr<Item>> owned;
  std::map<int, long> due;  // id -> the advance on which its next visit must come
  int next_id = 1;
  long tick = 0;
  for (int step = 0; step < 5000; step++) {
    int what = static_cast<int>(random() % 4);
    if (what == 0 || owned.empty()) {
      int id = next_id++;
      owned[id] = std::make_unique<Item>(id);
      wheel.insert(*owned[id]);
      due[id] = tick + kSlots;
    } else if (what == 1) {
      auto it = owned.begin();
      std::advance(it, static_cast<long>(random() % owned.size()));
      due.erase(it->first);
      owned.erase(it);
    } else {
      tick++;
      std::vector<int> seen = advance_once(wheel);
      for (int id : seen) {
        REQUIRE(due.count(id) == 1);
        CHECK(due[id] == tick);
        due[id] = tick + kSlots;
      }
      // Nobody due now was skipped.
      for (auto &[id, when] : due)
        REQUIRE(when > tick);
    }
    REQUIRE(wheel.size() == owned.size());
  }
}
