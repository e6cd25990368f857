// Tests for the table of connections per client address (core/ip_table.c):
// counting in and out, entries freed at zero, growth, chains, and addresses
// of every length.
#include <catch2/catch.hpp>

extern "C" {
#include "ip_table.h"
}

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace {

// A zero table, destroyed at the end of the test (leaks show under ASan).
struct Table {
  duet_ip_table_t t{};
  Table() = default;
  Table(const Table &) = delete;
  Table &operator=(const Table &) = delete;
  ~Table() { duet__ip_table_destroy(&t); }

  duet_ip_entry_t *acquire(const std::string &addr) {
    duet_ip_entry_t *e = duet__ip_table_acquire(&t, addr.c_str());
    REQUIRE(e != nullptr);
    return e;
  }

  // Entries reachable from the buckets: what the table really holds.
  size_t walk() const {
    size_t n = 0;
    for (size_t i = 0; i < t.bucket_count; i++)
      for (duet_ip_entry_t *e = t.buckets[i]; e; e = e->next)
        n++;
    return n;
  }
};

std::string v4(unsigned i) {
  return "10." + std::to_string((i >> 16) & 255) + "." + std::to_string((i >> 8) & 255) + "." + std::to_string(i & 255);
}

}  // namespace

TEST_CASE("a new address gets an entry counting one connection", "[ip_table]") {
  Table tb;
  duet_ip_entry_t *e = tb.acquire("192.0.2.1");
  CHECK(e->count == 1);
  CHECK(std::string(e->addr) == "192.0.2.1");
  CHECK(tb.t.entries == 1);
  CHECK(tb.walk() == 1);
}

TEST_CASE("the same address counts on the same entry", "[ip_table]") {
  Table tb;
  duet_ip_entry_t *a = tb.acquire("192.0.2.1");
  duet_ip_entry_t *b = tb.acquire("192.0.2.1");
  duet_ip_entry_t *c = tb.acquire("192.0.2.1");
  CHECK(a == b);
  CHECK(b == c);
  CHECK(a->count == 3);
  CHECK(tb.t.entries == 1);
}

TEST_CASE("different addresses get different entries, compared exactly", "[ip_table]") {
  Table tb;
  duet_ip_entry_t *a = tb.acquire("192.0.2.1");
  duet_ip_entry_t *b = tb.acquire("192.0.2.10");
  duet_ip_entry_t *c = tb.acquire("192.0.2.");
  duet_ip_entry_t *d = tb.acquire("2001:db8::1");
  duet_ip_entry_t *e = tb.acquire("2001:DB8::1");  // text, not parsed: a different key
  std::vector<duet_ip_entry_t *> all{a, b, c, d, e};
  std::sort(all.begin(), all.end());
  CHECK(std::unique(all.begin(), all.end()) == all.end());
  for (auto *x : all)
    CHECK(x->count == 1);
  CHECK(tb.t.entries == 5);
  CHECK(tb.walk() == 5);
}

TEST_CASE("release counts down and frees the entry at zero", "[ip_table]") {
  Table tb;
  duet_ip_entry_t *a = tb.acquire("198.51.100.7");
  tb.acquire("198.51.100.7");
  tb.acquire("198.51.100.8");
  duet__ip_table_release(&tb.t, a);
  CHECK(a->count == 1);
  CHECK(tb.t.entries == 2);
  duet__ip_table_release(&tb.t, a);  // freed now: a must not be read again
  CHECK(tb.t.entries == 1);
  CHECK(tb.walk() == 1);
  duet_ip_entry_t *again = tb.acquire("198.51.100.7");
  CHECK(again->count == 1);
  CHECK(tb.t.entries == 2);
}

TEST_CASE("the table grows past its first buckets and finds every address again", "[ip_table]") {
  Table tb;
  const unsigned n = 5000;
  std::vector<duet_ip_entry_t *> first(n);
  for (unsigned i = 0; i < n; i++)
    first[i] = tb.acquire(v4(i));
  CHECK(tb.t.entries == n);
  CHECK(tb.t.bucket_count >= n);
  CHECK((tb.t.bucket_count & (tb.t.bucket_count - 1)) == 0);  // a power of two: hash & (count - 1)
  CHECK(tb.walk() == n);
  for (unsigned i = 0; i < n; i++) {
    duet_ip_entry_t *e = tb.acquire(v4(i));
    INFO("address " << v4(i));
    REQUIRE(e == first[i]);
    REQUIRE(e->count == 2);
  }
}

TEST_CASE("releasing in random order keeps every other chain intact", "[ip_table]") {
  Table tb;
  const unsigned n = 3000;
  std::map<std::string, duet_ip_entry_t *> live;
  for (unsigned i = 0; i < n; i++)
    live[v4(i)] = tb.acquire(v4(i));
  std::vector<std::string> order;
  for (auto &kv : live)
    order.push_back(kv.first);
  std::mt19937 rng(22);
  std::shuffle(order.begin(), order.end(), rng);
  for (size_t k = 0; k < order.size(); k++) {
    duet__ip_table_release(&tb.t, live[order[k]]);
    live.erase(order[k]);
    if (k % 500 == 0) {
      REQUIRE(tb.t.entries == live.size());
      REQUIRE(tb.walk() == live.size());
      // Every remaining address is still found as the same entry.
      for (auto &kv : live) {
        duet_ip_entry_t *e = tb.acquire(kv.first);
        REQUIRE(e == kv.second);
        duet__ip_table_release(&tb.t, e);
        REQUIRE(e->count == 1);
      }
    }
  }
  CHECK(tb.t.entries == 0);
  CHECK(tb.walk() == 0);
}

TEST_CASE("the longest IPv6 text address is kept whole", "[ip_table]") {
  Table tb;
  const std::string longest = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
  REQUIRE(longest.size() == 45);
  duet_ip_entry_t *a = tb.acquire(longest);
  CHECK(std::string(a->addr) == longest);
  // One character less is another address.
  duet_ip_entry_t *b = tb.acquire(longest.substr(0, 44));
  CHECK(a != b);
  CHECK(tb.acquire(longest) == a);
  CHECK(a->count == 2);
  duet__ip_table_release(&tb.t, a);
  duet__ip_table_release(&tb.t, a);
  duet__ip_table_release(&tb.t, b);
  CHECK(tb.t.entries == 0);
}

// Before the fix an address longer than an entry holds was stored cut but
// looked up and hashed whole: each acquire made a new entry, and release
// searched the wrong bucket and ran off the end of its chain (a crash).
TEST_CASE("an address longer than an entry holds is counted and released safely", "[ip_table]") {
  Table tb;
  const std::string scoped = "fe80:1111:2222:3333:4444:5555:6666:7777%a-very-long-interface0";
  REQUIRE(scoped.size() > 45);
  // Enough other entries that a wrong bucket would not be empty by luck.
  for (unsigned i = 0; i < 200; i++)
    tb.acquire(v4(i));
  duet_ip_entry_t *a = tb.acquire(scoped);
  duet_ip_entry_t *b = tb.acquire(scoped);
  CHECK(a == b);
  CHECK(a->count == 2);
  CHECK(std::strlen(a->addr) == 45);
  CHECK(tb.t.entries == 201);
  duet__ip_table_release(&tb.t, a);
  duet__ip_table_release(&tb.t, a);
  CHECK(tb.t.entries == 200);
  CHECK(tb.walk() == 200);
}

TEST_CASE("an empty address is a key like any other", "[ip_table]") {
  Table tb;
  duet_ip_entry_t *a = tb.acquire("");
  CHECK(tb.acquire("") == a);
  CHECK(a->count == 2);
  duet__ip_table_release(&tb.t, a);
  duet__ip_table_release(&tb.t, a);
  CHECK(tb.t.entries == 0);
}

TEST_CASE("destroy frees live entries and leaves a table that can be used again", "[ip_table]") {
  Table tb;
  for (unsigned i = 0; i < 100; i++)
    tb.acquire(v4(i));
  duet__ip_table_destroy(&tb.t);
  CHECK(tb.t.buckets == nullptr);
  CHECK(tb.t.bucket_count == 0);
  CHECK(tb.t.entries == 0);
  duet_ip_entry_t *e = tb.acquire("192.0.2.1");
  CHECK(e->count == 1);
  CHECK(tb.t.entries == 1);
}

TEST_CASE("destroying a table never used is harmless", "[ip_table]") {
  duet_ip_table_t t{};
  duet__ip_table_destroy(&t);
  CHECK(t.bucket_count == 0);
  duet__ip_table_destroy(&t);
}
