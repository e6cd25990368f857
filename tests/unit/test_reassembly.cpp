// Reassembly of fragmented WebSocket messages: whole messages pass without a
// copy, pieces are joined, and over-limit or binary messages are refused as
// a whole, however they are cut.
#include <catch2/catch.hpp>

#include <string>

extern "C" {
#include "reassembly.h"
}

namespace {
struct Rx {
  duet_reassembly_t rx{};
  ~Rx() { duet__reassembly_free(&rx); }
  duet_rx_t feed(const std::string &piece, bool first, bool final, bool binary = false, size_t max = 64) {
    const char *data = nullptr;
    size_t len = 0;
    duet_rx_t r = duet__reassembly_feed(&rx, piece.data(), piece.size(), first, final, binary, max, &data, &len);
    message = r == DUET_RX_MESSAGE ? std::string(data, len) : std::string();
    in_place = r == DUET_RX_MESSAGE && data == piece.data();
    return r;
  }
  std::string message;
  bool in_place = false;
};
}  // namespace

TEST_CASE("a message that comes whole is handed over in place") {
  Rx r;
  CHECK(r.feed("{\"ping\":1}", true, true) == DUET_RX_MESSAGE);
  CHECK(r.message == "{\"ping\":1}");
  CHECK(r.in_place);
  CHECK(r.rx.buf == nullptr);
}

TEST_CASE("pieces are joined into one message") {
  Rx r;
  CHECK(r.feed("{\"pi", true, false) == DUET_RX_MORE);
  CHECK(r.feed("ng\"", false, false) == DUET_RX_MORE);
  CHECK(r.feed(":1}", false, true) == DUET_RX_MESSAGE);
  CHECK(r.message == "{\"ping\":1}");
  // The next message starts afresh.
  CHECK(r.feed("ab", true, false) == DUET_RX_MORE);
  CHECK(r.feed("c", false, true) == DUET_RX_MESSAGE);
  CHECK(r.message == "abc");
}

TEST_CASE("a message of exactly the limit passes, one byte more is too large") {
  Rx r;
  CHECK(r.feed(std::string(40, 'a'), true, false) == DUET_RX_MORE);
  CHECK(r.feed(std::string(24, 'b'), false, true) == DUET_RX_MESSAGE);
  CHECK(r.message.size() == 64);
  CHECK(r.feed(std::string(40, 'a'), true, false) == DUET_RX_MORE);
  CHECK(r.feed(std::string(25, 'b'), false, true) == DUET_RX_TOO_LARGE);
  CHECK(r.feed(std::string(65, 'c'), true, true) == DUET_RX_TOO_LARGE);
}

TEST_CASE("the rest of a refused message is skipped, then the next one is read") {
  Rx r;
  CHECK(r.feed(std::string(60, 'a'), true, false) == DUET_RX_MORE);
  CHECK(r.feed(std::string(60, 'b'), false, false) == DUET_RX_MORE);
  CHECK(r.feed("small", false, true) == DUET_RX_TOO_LARGE);
  CHECK(r.feed("next", true, true) == DUET_RX_MESSAGE);
  CHECK(r.message == "next");
}

TEST_CASE("a binary message is refused whole, in one piece or many") {
  Rx r;
  CHECK(r.feed("bin", true, true, true) == DUET_RX_BINARY);
  CHECK(r.feed("b", true, false, true) == DUET_RX_MORE);
  CHECK(r.feed("in", false, true, true) == DUET_RX_BINARY);
}

TEST_CASE("a big buffer is given back after its message, a small one kept") {
  Rx r;
  std::string half(12 * 1024, 'x');
  CHECK(r.feed(half, true, false, false, 64 * 1024) == DUET_RX_MORE);
  CHECK(r.feed(half, false, true, false, 64 * 1024) == DUET_RX_MESSAGE);
  duet__reassembly_trim(&r.rx);
  CHECK(r.rx.buf == nullptr);
  CHECK(r.feed("a", true, false) == DUET_RX_MORE);
  CHECK(r.feed("b", false, true) == DUET_RX_MESSAGE);
  duet__reassembly_trim(&r.rx);
  CHECK(r.rx.buf != nullptr);
}

TEST_CASE("a message of empty fragments is an empty message, and empty pieces add nothing") {
  Rx r;
  CHECK(r.feed("", true, false) == DUET_RX_MORE);
  CHECK(r.feed("", false, true) == DUET_RX_MESSAGE);
  CHECK(r.message.empty());
  CHECK(r.feed("a", true, false) == DUET_RX_MORE);
  CHECK(r.feed("", false, false) == DUET_RX_MORE);
  CHECK(r.feed("b", false, true) == DUET_RX_MESSAGE);
  CHECK(r.message == "ab");
}
