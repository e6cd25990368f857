// Connections (core/conn.c): ids (slot + generation), the bounded send
// queues per connection and in all, batched writes, the close, and the
// series conn.c registers. The writes go through a real libwebsockets
// context on a libuv loop, to one end of a socketpair adopted as a raw
// socket: the test reads the other end. (A raw socket shows the frames
// conn.c builds as they are; lws adds no WebSocket header to a ping or a
// close there, so those arrive as their bare payload.)
#include <catch2/catch.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <uv.h>

// conn.h ends duet_conn_t with a C flexible array member.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
extern "C" {
#include "conn.h"
#include "metrics.h"
}
#pragma GCC diagnostic pop

namespace {

// ---- ids, without sockets ----

struct Table {
  uv_loop_t loop{};
  duet_conns_t conns{};
  explicit Table(size_t plugins = 0) {
    REQUIRE(uv_loop_init(&loop) == 0);
    REQUIRE(duet__conns_init(&conns, &loop, plugins, 1024, 4096, nullptr) == 0);
  }
  ~Table() {
    duet__conns_close_handles(&conns);
    uv_run(&loop, UV_RUN_DEFAULT);
    duet__conns_destroy(&conns);
    CHECK(uv_loop_close(&loop) == 0);
  }
};

uint32_t slot_of(uint64_t id) { return static_cast<uint32_t>(id & 0xffffffffu); }
uint32_t generation_of(uint64_t id) { return static_cast<uint32_t>(id >> 32); }

}  // namespace

TEST_CASE("ids: low slots first, found by id, retired on remove, a new generation on reuse") {
  Table t;
  duet_conn_t *a = duet__conns_add(&t.conns, nullptr);
  duet_conn_t *b = duet__conns_add(&t.conns, nullptr);
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  CHECK(slot_of(a->id) == 1);
  CHECK(slot_of(b->id) == 2);
  CHECK(generation_of(a->id) == 1);
  CHECK(t.conns.live == 2);
  CHECK(duet__conns_get(&t.conns, a->id) == a);
  CHECK(duet__conns_get(&t.conns, b->id) == b);
  CHECK(duet__conns_get(&t.conns, 0) == nullptr);
  CHECK(duet__conns_get(&t.conns, 999999) == nullptr);

  uint64_t old = a->id;
  duet__conns_remove(&t.conns, a);
  CHECK(t.conns.live == 1);
  CHECK(duet__conns_get(&t.conns, old) == nullptr);
  duet_conn_t *c = duet__conns_add(&t.conns, nullptr);
  CHECK(slot_of(c->id) == 1);  // the slot again...
  CHECK(generation_of(c->id) == 2);
  CHECK(c->id != old);
  CHECK(duet__conns_get(&t.conns, old) == nullptr);  // ...yet the old id names nothing
  CHECK(duet__conns_get(&t.conns, c->id) == c);
}

TEST_CASE("the table grows past its first 64 slots and keeps every id") {
  Table t(2);
  std::vector<duet_conn_t *> all;
  for (int i = 0; i < 200; i++)
    all.push_back(duet__conns_add(&t.conns, nullptr));
  CHECK(t.conns.live == 200);
  CHECK(t.conns.slot_count >= 200);
  for (size_t i = 0; i < all.size(); i++) {
    REQUIRE(all[i] != nullptr);
    CHECK(slot_of(all[i]->id) == i + 1);
    CHECK(duet__conns_get(&t.conns, all[i]->id) == all[i]);
    // Each connection has a zeroed data slot per plugin.
    CHECK(duet__conn_plugin_data(all[i], 0) == nullptr);
    CHECK(duet__conn_plugin_data(all[i], 1) == nullptr);
  }
  duet__conn_set_plugin_data(all[5], 1, &t);
  CHECK(duet__conn_plugin_data(all[5], 1) == &t);
  CHECK(duet__conn_plugin_data(all[6], 1) == nullptr);
}

TEST_CASE("a connection's name in logs is address#slot") {
  Table t;
  duet__conns_add(&t.conns, nullptr);
  duet_conn_t *c = duet__conns_add(&t.conns, nullptr);
  snprintf(c->addr, sizeof c->addr, "2001:db8::7");
  char name[64];
  CHECK(std::string(duet__conn_name(c, name)) == "2001:db8::7#2");
}

// ---- sending and closing, through libwebsockets ----

namespace {

int raw_callback(struct lws *wsi, enum lws_callback_reasons reason, void *, void *, size_t) {
  auto *conn = static_cast<duet_conn_t *>(lws_get_opaque_user_data(wsi));
  if (reason == LWS_CALLBACK_RAW_WRITEABLE && conn)
    return duet__conn_on_writeable(conn);
  return 0;
}

const struct lws_protocols protocols[] = {
    {"raw-test", raw_callback, 0, 0, 0, nullptr, 0},
    {nullptr, nullptr, 0, 0, 0, nullptr, 0},
};

struct Peer {
  duet_conn_t *conn;
  int fd;  // our end: what the client would read
};

struct Lws {
  uv_loop_t loop{};
  struct lws_context *context = nullptr;
  struct lws_vhost *vhost = nullptr;
  duet_conns_t conns{};
  duet_metrics_t metrics{};
  std::vector<int> fds;
  std::vector<duet_conn_t *> closing;  // what on_closing heard, in order

  Lws(size_t max_queued, size_t max_total) {
    REQUIRE(uv_loop_init(&loop) == 0);
    lws_set_log_level(LLL_ERR, nullptr);
    static void *loops[1];
    loops[0] = &loop;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.foreign_loops = loops;
    info.vhost_name = "test";
    context = lws_create_context(&info);
    REQUIRE(context != nullptr);
    vhost = lws_create_vhost(context, &info);
    REQUIRE(vhost != nullptr);
    REQUIRE(duet__conns_init(&conns, &loop, 0, max_queued, max_total, &metrics) == 0);
    conns.on_closing = on_closing;
    conns.on_closing_data = this;
  }
  ~Lws() {
    for (size_t i = 0; i < conns.slot_count; i++)
      if (conns.slots[i])
        lws_set_opaque_user_data(conns.slots[i]->wsi, nullptr);
    lws_context_destroy(context);
    duet__conns_close_handles(&conns);
    uv_run(&loop, UV_RUN_DEFAULT);
    lws_context_destroy(context);
    uv_run(&loop, UV_RUN_DEFAULT);
    duet__conns_destroy(&conns);
    duet__metrics_destroy(&metrics);
    for (int fd : fds)
      close(fd);
    CHECK(uv_loop_close(&loop) == 0);
  }
  static void on_closing(void *data, duet_conn_t *conn) { static_cast<Lws *>(data)->closing.push_back(conn); }

  // A connection whose socket lws holds; the other end is peer.fd.
  Peer connect() {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    fds.push_back(sv[1]);
    lws_sock_file_fd_type fd;
    fd.sockfd = sv[0];
    struct lws *wsi = lws_adopt_descriptor_vhost(vhost, LWS_ADOPT_SOCKET, fd, "raw-test", nullptr);
    REQUIRE(wsi != nullptr);
    duet_conn_t *conn = duet__conns_add(&conns, wsi);
    REQUIRE(conn != nullptr);
    snprintf(conn->addr, sizeof conn->addr, "peer");
    lws_set_opaque_user_data(wsi, conn);
    return Peer{conn, sv[1]};
  }

  int send(duet_conn_t *conn, const std::string &text) {
    return duet__conn_send(&conns, conn, text.data(), text.size());
  }

  // Runs the loop until peer has read at least want bytes or ms pass.
  std::string read(const Peer &peer, size_t want, unsigned ms = 3000) {
    std::string got;
    uint64_t start = uv_now(&loop);
    while (got.size() < want && uv_now(&loop) - start < ms) {
      uv_run(&loop, UV_RUN_NOWAIT);
      char buf[65536];
      ssize_t n = ::read(peer.fd, buf, sizeof buf);
      if (n > 0)
        got.append(buf, static_cast<size_t>(n));
      else
        usleep(1000);
      uv_update_time(&loop);
    }
    return got;
  }
  // Runs the loop a while and returns whatever arrived.
  std::string drain(const Peer &peer, unsigned ms = 100) { return read(peer, SIZE_MAX, ms); }

  std::string render() const {
    char *buf = nullptr;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    duet__metrics_render(&metrics, f);
    fclose(f);
    std::string text(buf, len);
    free(buf);
    return text;
  }
};

// A server's text frame as RFC 6455 5.2 has it: FIN + text, unmasked.
std::string frame(const std::string &payload) {
  std::string h(1, '\x81');
  size_t n = payload.size();
  if (n < 126) {
    h += static_cast<char>(n);
  } else if (n <= 0xffff) {
    h += static_cast<char>(126);
    h += static_cast<char>(n >> 8);
    h += static_cast<char>(n & 0xff);
  } else {
    h += static_cast<char>(127);
    for (int i = 0; i < 8; i++)
      h += static_cast<char>((static_cast<uint64_t>(n) >> (56 - 8 * i)) & 0xff);
  }
  return h + payload;
}

std::string close_payload(int code, const std::string &reason) {
  return std::string(1, static_cast<char>(code >> 8)) + static_cast<char>(code & 0xff) + reason;
}

}  // namespace

TEST_CASE("queued frames leave in order, with their headers, at the end of the loop turn") {
  Lws l(1 << 20, 1 << 21);
  Peer p = l.connect();
  std::string small = "{\"a\":1}", mid(300, 'm'), big(70000, 'b');
  REQUIRE(l.send(p.conn, small) == 0);
  REQUIRE(l.send(p.conn, mid) == 0);
  REQUIRE(l.send(p.conn, big) == 0);
  CHECK(p.conn->queued_bytes == small.size() + mid.size() + big.size());
  CHECK(l.conns.queued_bytes_total == p.conn->queued_bytes);
  std::string expected = frame(small) + frame(mid) + frame(big);
  CHECK(l.read(p, expected.size()) == expected);
  CHECK(p.conn->queued_bytes == 0);
  CHECK(l.conns.queued_bytes_total == 0);
  CHECK(l.conns.queued_bytes_peak == small.size() + mid.size() + big.size());
  CHECK(l.closing.empty());
}

TEST_CASE("over its own bound a connection is closed: its queue dropped, its close frame sent") {
  Lws l(1000, 1 << 20);
  Peer p = l.connect();
  REQUIRE(l.send(p.conn, std::string(600, 'x')) == 0);
  CHECK(l.send(p.conn, std::string(500, 'y')) == DUET_ENOBUFS);
  CHECK(p.conn->closing);
  CHECK(p.conn->close_why == DUET_CLOSE_LIMIT);
  CHECK(p.conn->close_code == 1008);
  CHECK(p.conn->queued_bytes == 0);
  CHECK(l.conns.queued_bytes_total == 0);
  CHECK(l.closing == std::vector<duet_conn_t *>{p.conn});
  CHECK(l.send(p.conn, "late") == DUET_ENOCONN);
  std::string expected = close_payload(1008, "send queue full");
  CHECK(l.read(p, expected.size()) == expected);  // the backlog was dropped, not sent
  CHECK(p.conn->close_sent);
}

TEST_CASE("a close waits for what is queued, then sends the close frame; a second close changes nothing") {
  Lws l(1 << 16, 1 << 20);
  Peer p = l.connect();
  REQUIRE(l.send(p.conn, "one") == 0);
  REQUIRE(l.send(p.conn, "two") == 0);
  duet__conn_close(p.conn, 4001, "taken over", DUET_CLOSE_TAKEOVER);
  duet__conn_close(p.conn, 1000, "again", DUET_CLOSE_SERVER);
  CHECK(l.closing == std::vector<duet_conn_t *>{p.conn});
  CHECK(p.conn->close_why == DUET_CLOSE_TAKEOVER);
  CHECK(l.send(p.conn, "three") == DUET_ENOCONN);
  std::string expected = frame("one") + frame("two") + close_payload(4001, "taken over");
  CHECK(l.read(p, expected.size()) == expected);
  CHECK(l.drain(p) == "");  // nothing after the close frame
}

TEST_CASE("a close reason is cut to the 123 bytes a close frame holds") {
  Lws l(1 << 16, 1 << 20);
  Peer p = l.connect();
  duet__conn_close(p.conn, 1001, std::string(200, 'r').c_str(), DUET_CLOSE_SHUTDOWN);
  std::string expected = close_payload(1001, std::string(123, 'r'));
  CHECK(l.read(p, expected.size()) == expected);
  CHECK(l.drain(p) == "");
}

TEST_CASE("a ping goes out as a one-byte payload") {
  Lws l(1 << 16, 1 << 20);
  Peer p = l.connect();
  duet__conn_ping(p.conn);
  CHECK(l.read(p, 1) == "k");
  CHECK_FALSE(p.conn->ping_pending);
}

TEST_CASE("over the bound for all, the connection holding the most is closed to make room") {
  Lws l(4000, 5000);
  Peer heavy = l.connect(), light = l.connect(), sender = l.connect();
  // Nothing leaves until the loop runs: the queues fill.
  REQUIRE(l.send(heavy.conn, std::string(3000, 'h')) == 0);
  REQUIRE(l.send(light.conn, std::string(1000, 'l')) == 0);
  CHECK(l.conns.queued_bytes_total == 4000);
  REQUIRE(l.send(sender.conn, std::string(1500, 's')) == 0);
  CHECK(heavy.conn->closing);
  CHECK(heavy.conn->close_why == DUET_CLOSE_LIMIT);
  CHECK_FALSE(light.conn->closing);
  CHECK_FALSE(sender.conn->closing);
  CHECK(l.closing == std::vector<duet_conn_t *>{heavy.conn});
  CHECK(l.conns.budget_closes == 1);
  CHECK(l.conns.queued_bytes_total == 2500);
  CHECK(l.conns.queued_bytes_peak == 4000);

  // What the series conn.c registered show now.
  std::string text = l.render();
  CHECK(text.find("duet_connections_open 3\n") != std::string::npos);
  CHECK(text.find("duet_send_queue_bytes 2500\n") != std::string::npos);
  CHECK(text.find("duet_send_queue_bytes_peak 4000\n") != std::string::npos);
  CHECK(text.find("duet_send_queue_bytes_limit 5000\n") != std::string::npos);
  CHECK(text.find("duet_send_budget_closes_total 1\n") != std::string::npos);
  CHECK(text.find("# TYPE duet_send_budget_closes_total counter\n") != std::string::npos);

  std::string to_light = frame(std::string(1000, 'l')), to_sender = frame(std::string(1500, 's'));
  CHECK(l.read(light, to_light.size()) == to_light);
  CHECK(l.read(sender, to_sender.size()) == to_sender);
  std::string expected = close_payload(1008, "server send budget full");
  CHECK(l.read(heavy, expected.size()) == expected);
  CHECK(l.conns.queued_bytes_total == 0);
}

TEST_CASE("when the sender itself holds the most, its own send is refused") {
  Lws l(5000, 5000);
  Peer a = l.connect(), b = l.connect();
  REQUIRE(l.send(a.conn, std::string(3500, 'a')) == 0);
  REQUIRE(l.send(b.conn, std::string(1000, 'b')) == 0);
  CHECK(l.send(a.conn, std::string(600, 'c')) == DUET_ENOBUFS);  // within its own bound, not the total
  CHECK(a.conn->closing);
  CHECK(a.conn->close_why == DUET_CLOSE_LIMIT);
  CHECK_FALSE(b.conn->closing);
  CHECK(l.conns.queued_bytes_total == 1000);
  CHECK(l.conns.budget_closes == 1);
}
