// Admission (core/admission.c): the connection limits in all and per
// address, the list of connections waiting for their first accepted
// message, and the open timeout that ends their wait, on a real libuv loop.
// (The upgrade check needs a live HTTP request and is left to the
// integration tests.)
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

// conn.h ends duet_conn_t with a C flexible array member.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
extern "C" {
#include "admission.h"
#include "conn.h"
}
#pragma GCC diagnostic pop

namespace {

struct Fixture {
  uv_loop_t loop{};
  duet_options_t opt{};
  duet_conns_t conns{};
  duet_label_counts_t errors{};
  duet_admission_t a{};
  std::vector<duet_conn_t *> timed_out;

  explicit Fixture(size_t max_connections = 100, size_t per_ip = 10, double open_timeout_s = 3600) {
    REQUIRE(uv_loop_init(&loop) == 0);
    opt.max_connections = max_connections;
    opt.max_connections_per_ip = per_ip;
    opt.open_timeout_s = open_timeout_s;
    REQUIRE(duet__conns_init(&conns, &loop, 0, 1024, 4096, nullptr) == 0);
    duet__admission_init(&a, &loop, &opt, &errors, on_timeout, this);
  }
  ~Fixture() {
    duet__admission_close(&a);
    duet__conns_close_handles(&conns);
    uv_run(&loop, UV_RUN_DEFAULT);
    duet__conns_destroy(&conns);
    duet__admission_destroy(&a);
    CHECK(uv_loop_close(&loop) == 0);
  }
  static void on_timeout(void *data, duet_conn_t *conn) { static_cast<Fixture *>(data)->timed_out.push_back(conn); }

  // A connection from addr as the session would admit it.
  struct Admitted {
    duet_conn_t *conn;
    duet_admission_slot_t slot;
    const char *refused;
    std::string text;
  };
  Admitted admit(const char *addr) {
    Admitted x{};
    x.conn = duet__conns_add(&conns, nullptr);
    REQUIRE(x.conn != nullptr);
    snprintf(x.conn->addr, sizeof x.conn->addr, "%s", addr);
    char text[200] = "";
    x.refused = duet__admission_admit(&a, conns.live, x.conn, &x.slot, text, sizeof text);
    x.text = text;
    return x;
  }
  void close(Admitted &x) {
    duet__admission_release(&a, &x.slot);
    duet__conns_remove(&conns, x.conn);
  }
  std::vector<duet_conn_t *> waiting() const {
    std::vector<duet_conn_t *> list;
    for (const duet_admission_slot_t *s = a.waiting_head; s; s = s->next)
      list.push_back(s->conn);
    // The list is doubly linked: walking back gives the same, reversed.
    std::vector<duet_conn_t *> back;
    for (const duet_admission_slot_t *s = a.waiting_tail; s; s = s->prev)
      back.insert(back.begin(), s->conn);
    CHECK(back == list);
    return list;
  }
  size_t count_of(const char *addr) const {
    for (size_t i = 0; i < a.ips.bucket_count; i++)
      for (const duet_ip_entry_t *e = a.ips.buckets[i]; e; e = e->next)
        if (strcmp(e->addr, addr) == 0)
          return e->count;
    return 0;
  }
};

}  // namespace

TEST_CASE("admitted connections wait in arrival order until ready or released") {
  Fixture f;
  auto one = f.admit("192.0.2.1"), two = f.admit("192.0.2.2"), three = f.admit("192.0.2.3");
  REQUIRE(one.refused == nullptr);
  REQUIRE(two.refused == nullptr);
  REQUIRE(three.refused == nullptr);
  CHECK(f.waiting() == std::vector<duet_conn_t *>{one.conn, two.conn, three.conn});
  CHECK_FALSE(two.slot.ready);

  duet__admission_ready(&f.a, &two.slot);  // from the middle
  CHECK(two.slot.ready);
  CHECK(f.waiting() == std::vector<duet_conn_t *>{one.conn, three.conn});
  duet__admission_ready(&f.a, &two.slot);  // twice is harmless
  CHECK(f.waiting() == std::vector<duet_conn_t *>{one.conn, three.conn});

  f.close(three);  // the tail, released while waiting
  CHECK(f.waiting() == std::vector<duet_conn_t *>{one.conn});
  duet__admission_ready(&f.a, &one.slot);  // the last one
  CHECK(f.waiting().empty());
  CHECK(f.a.waiting_tail == nullptr);
  f.close(one);
  f.close(two);
  CHECK(f.a.ips.entries == 0);
}

TEST_CASE("over the limit in all, a connection is refused with server-full and never waits") {
  Fixture f(2);
  auto one = f.admit("192.0.2.1"), two = f.admit("192.0.2.2");
  REQUIRE(one.refused == nullptr);
  REQUIRE(two.refused == nullptr);
  auto three = f.admit("192.0.2.3");
  REQUIRE(three.refused != nullptr);
  CHECK(std::string(three.refused) == "server-full");
  CHECK(three.text == "This server is at its limit of 2 connections; try again later.");
  CHECK(three.slot.ready);
  CHECK(f.waiting() == std::vector<duet_conn_t *>{one.conn, two.conn});
  // Its address still counts until it is released (the close follows).
  CHECK(f.count_of("192.0.2.3") == 1);
  f.close(three);
  CHECK(f.count_of("192.0.2.3") == 0);
  CHECK(f.waiting() == std::vector<duet_conn_t *>{one.conn, two.conn});
  // Room again after a close.
  f.close(one);
  auto four = f.admit("192.0.2.4");
  CHECK(four.refused == nullptr);
  f.close(two);
  f.close(four);
}

TEST_CASE("over the limit per address, only that address is refused, until one of its own closes") {
  Fixture f(100, 2);
  auto a1 = f.admit("198.51.100.7"), a2 = f.admit("198.51.100.7");
  REQUIRE(a1.refused == nullptr);
  REQUIRE(a2.refused == nullptr);
  CHECK(f.count_of("198.51.100.7") == 2);
  auto a3 = f.admit("198.51.100.7");
  REQUIRE(a3.refused != nullptr);
  CHECK(std::string(a3.refused) == "too-many-connections");
  CHECK(a3.text == "Your address already has 2 connections, this server's limit.");
  CHECK(a3.slot.ready);
  auto other = f.admit("2001:db8::1");
  CHECK(other.refused == nullptr);
  f.close(a3);
  CHECK(f.count_of("198.51.100.7") == 2);
  f.close(a1);
  CHECK(f.count_of("198.51.100.7") == 1);
  auto a4 = f.admit("198.51.100.7");
  CHECK(a4.refused == nullptr);
  CHECK(f.waiting() == std::vector<duet_conn_t *>{a2.conn, other.conn, a4.conn});
  f.close(a2);
  f.close(a4);
  f.close(other);
  CHECK(f.a.ips.entries == 0);
}

TEST_CASE("releasing a slot that was never admitted does nothing") {
  Fixture f;
  duet_admission_slot_t never{};
  duet__admission_release(&f.a, &never);
  CHECK(f.a.waiting_head == nullptr);
  CHECK(f.a.ips.entries == 0);
}

TEST_CASE("the open timeout ends the wait of those still waiting, oldest first") {
  Fixture f(100, 10, 0.06);
  uv_update_time(&f.loop);
  auto one = f.admit("192.0.2.1"), two = f.admit("192.0.2.2"), three = f.admit("192.0.2.3");
  duet__admission_ready(&f.a, &two.slot);  // it sent its first message in time
  uint64_t start = uv_now(&f.loop);
  while (f.timed_out.size() < 2 && uv_now(&f.loop) - start < 2000)
    uv_run(&f.loop, UV_RUN_ONCE);
  uint64_t waited = uv_now(&f.loop) - start;
  CHECK(f.timed_out == std::vector<duet_conn_t *>{one.conn, three.conn});
  CHECK(waited >= 60);
  CHECK(f.waiting().empty());
  CHECK(one.slot.ready);
  CHECK(three.slot.ready);
  // No second call for the same connection.
  uv_run(&f.loop, UV_RUN_NOWAIT);
  CHECK(f.timed_out.size() == 2);
  f.close(one);
  f.close(two);
  f.close(three);
}

TEST_CASE("a connection admitted later is not timed out with the earlier ones") {
  Fixture f(100, 10, 0.2);
  uv_update_time(&f.loop);
  auto early = f.admit("192.0.2.1");
  uint64_t start = uv_now(&f.loop);
  // Admit the second one 120 ms later.
  while (uv_now(&f.loop) - start < 120)
    uv_run(&f.loop, UV_RUN_ONCE);
  auto late = f.admit("192.0.2.2");
  while (f.timed_out.empty() && uv_now(&f.loop) - start < 2000)
    uv_run(&f.loop, UV_RUN_ONCE);
  CHECK(f.timed_out == std::vector<duet_conn_t *>{early.conn});
  CHECK(f.waiting() == std::vector<duet_conn_t *>{late.conn});
  while (f.timed_out.size() < 2 && uv_now(&f.loop) - start < 2000)
    uv_run(&f.loop, UV_RUN_ONCE);
  CHECK(f.timed_out == std::vector<duet_conn_t *>{early.conn, late.conn});
  CHECK(uv_now(&f.loop) - start >= 320);
  f.close(early);
  f.close(late);
}
