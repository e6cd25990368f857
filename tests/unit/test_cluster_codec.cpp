// What the cluster stores in Redis and sends between nodes, checked alone.
#include <catch2/catch.hpp>

#include "cluster/codec.hpp"

using namespace duet::cluster;

TEST_CASE("a place survives encode and decode with every field") {
  Place p;
  p.conn = {7, 0x100000002ull};
  p.local = "al\"ice\n\xE6\x97\xA5";
  p.remote = "bob";
  p.partner = {4294967295u, 9};
  p.away_partner = "";
  p.can_resume = true;
  p.offerer = true;
  p.token = "00ff";
  p.paired_unix_ms = 1764700000123ull;
  p.sdp = 3;
  p.ice = 18446744073709551615ull;
  p.reason = "timeout";
  auto back = decode(encode(Stored{42, p}));
  REQUIRE(back);
  CHECK(back->version == 42);
  REQUIRE(back->place);
  CHECK(back->place->conn == p.conn);
  CHECK(back->place->local == p.local);
  CHECK(back->place->partner == p.partner);
  CHECK(back->place->can_resume);
  CHECK(back->place->offerer);
  CHECK(back->place->paired_unix_ms == p.paired_unix_ms);
  CHECK(back->place->ice == p.ice);
  CHECK(back->place->reason == "timeout");
  CHECK(!back->place->waiting);
  CHECK(encode_place(back->place) == encode_place(p));
}

TEST_CASE("a tombstone keeps its version and holds no place") {
  auto back = decode(encode(Stored{9, std::nullopt}));
  REQUIRE(back);
  CHECK(back->version == 9);
  CHECK(!back->place);
  CHECK(encode_place(std::nullopt).empty());
}

TEST_CASE("values that are not records decode to nothing") {
  for (const char *bad : {"", "null", "[]", "{}", R"({"v":-1})", R"({"v":1,"place":{}})", R"({"v":1,"place":3})",
                          R"({"v":1,"place":{"c":[1],"l":"a"}})"})
    CHECK(!decode(bad));
}

TEST_CASE("frames carry any bytes in their body and parse back") {
  std::string json = "{\"ice\":1,\n\"x\":\"S 1\\n\"}";
  const std::string s_text = frame_send(18446744073709551615ull, json);  // the frame's views point into it
  auto s = parse_frame(s_text);
  REQUIRE(s);
  CHECK(s->kind == 'S');
  CHECK(s->conn == 18446744073709551615ull);
  CHECK(s->a == json);

  const std::string e_text =
      frame_error(5, "replaced", "A newer connection\nopened.");  // the frame's views point into it
  auto e = parse_frame(e_text);
  REQUIRE(e);
  CHECK(e->kind == 'E');
  CHECK(e->a == "replaced");
  CHECK(e->b == "A newer connection\nopened.");

  const std::string x_text = frame_close(6, 4001, "replaced by a newer connection");  // the frame's views point into it
  auto x = parse_frame(x_text);
  REQUIRE(x);
  CHECK(x->code == 4001);
  CHECK(x->a == "replaced by a newer connection");

  const std::string u_text = frame_update("id with\nnewline", "{\"v\":1}");  // the frame's views point into it
  auto u = parse_frame(u_text);
  REQUIRE(u);
  CHECK(u->a == "id with\nnewline");
  CHECK(u->b == "{\"v\":1}");

  const std::string g_text = frame_grace("tok", "alice");  // the frame's views point into it
  auto g = parse_frame(g_text);
  REQUIRE(g);
  CHECK(g->a == "tok");
  CHECK(g->b == "alice");
}

TEST_CASE("malformed frames are refused, not guessed at") {
  for (const char *bad : {"", "S", "S 1", "S x\n{}", "Q 1\n", "E 1\nx", "E 1 99\nshort", "X 1 70000\n", "U 5\nab",
                          "S  1\n{}", "S 1 2\n{}"})
    CHECK(!parse_frame(bad));
}
