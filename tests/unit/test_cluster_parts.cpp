// The cluster's pure parts: the Redis names (schema.hpp), connections of
// other nodes (conn_map.cpp) and healing (healing.cpp), without Redis.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "cluster/conn_map.hpp"
#include "cluster/healing.hpp"
#include "cluster/schema.hpp"

using namespace duet::cluster;
using duet::pairing::Actions;
using duet::pairing::CallEnded;
using duet::pairing::Takeover;

namespace {

struct Sink : Actions {
  std::vector<std::pair<ConnId, std::string>> sent;
  std::vector<std::string> unpaired_reasons;
  void send(ConnId to, std::string_view json) override { sent.emplace_back(to, std::string(json)); }
  void send_error(ConnId, const char *, const char *) override {}
  void close(ConnId, int, const char *) override {}
  void opened(ConnId, std::string_view, std::string_view) override {}
  void paired(ConnId, ConnId, std::string_view, std::string_view) override {}
  void unpaired(const CallEnded &call) override { unpaired_reasons.emplace_back(call.reason); }
  void start_grace(const std::string &) override {}
  void cancel_grace(const std::string &) override {}
  void resumed(ConnId, ConnId, std::string_view) override {}
  std::string new_token() override { return "t"; }
};

}  // namespace

TEST_CASE("the Redis names every node must agree on") {
  CHECK(schema::id_key("alice") == "duet:id:alice");
  CHECK(schema::node_key(42) == "duet:node:42");
  CHECK(schema::node_channel(42) == "duet:node:42");
  CHECK(schema::px(schema::kNodeTtl) == "6000");
  CHECK(schema::px(schema::kTombstone) == "60000");
  CHECK(schema::kHeartbeat == std::chrono::seconds(2));
}

TEST_CASE("a local connection is itself, another node's a stand-in") {
  ConnMap map(7);
  CHECK(map.local_id({7, 5}) == 5);
  CHECK(map.is_here(5));
  ConnId s = map.local_id({9, 5});
  CHECK_FALSE(map.is_here(s));
  CHECK(map.local_id({9, 5}) == s);
  CHECK(map.where(s) == Where{9, 5});
  CHECK(map.where(5) == Where{7, 5});
  CHECK_FALSE(map.where(0));
}

TEST_CASE("a record goes to a place and back") {
  ConnMap map(7);
  PairingState::Record r;
  r.conn = 3;
  r.entry.local = "a";
  r.entry.remote = "b";
  r.entry.partner = map.local_id({9, 4});
  r.entry.sdp = 2;
  auto p = map.to_place(r);
  REQUIRE(p);
  CHECK(p->conn == Where{7, 3});
  CHECK(p->partner == Where{9, 4});
  auto back = map.to_local(p);
  REQUIRE(back);
  CHECK(back->conn == 3);
  CHECK(back->entry.partner == r.entry.partner);
  CHECK(back->entry.sdp == 2);
  CHECK_FALSE(map.to_place(std::nullopt));
}

TEST_CASE("stand-ins nothing names are forgotten") {
  ConnMap map(7);
  Sink sink;
  PairingState state(sink, Takeover::kReplace, 256);
  ConnId kept = map.local_id({9, 1}), dropped = map.local_id({9, 2});
  map.forget_unused({kept}, state);
  CHECK(map.where(kept) == Where{9, 1});
  CHECK_FALSE(map.where(dropped));
}

TEST_CASE("healing closes the place of a dead connection and tells its partner") {
  Sink sink;
  PairingState state(sink, Takeover::kReplace, 256);
  REQUIRE(state.open(1, "a", "b").ok());
  REQUIRE(state.open(2, "b", "a").ok());
  sink.sent.clear();
  std::size_t lost = heal(
      state, {"a", "b"}, [](ConnId c) { return c != 2; }, sink);
  CHECK(lost == 1);
  CHECK_FALSE(state.record("b"));
  CHECK(state.partner_of(1) == 0);
  REQUIRE(sink.sent.size() == 1);
  CHECK(sink.sent[0] == std::make_pair(ConnId(1), std::string(R"({"close":1})")));
}

TEST_CASE("a lost connection of another node ends its call as node-lost, one of ours as client") {
  const ConnId elsewhere = duet::cluster::ConnMap::kElsewhere | 7;
  for (const ConnId gone : {ConnId(2), elsewhere}) {
    Sink sink;
    PairingState state(sink, Takeover::kReplace, 256);
    REQUIRE(state.open(1, "a", "b").ok());
    REQUIRE(state.open(gone, "b", "a").ok());
    CHECK(heal(
              state, {"a", "b"}, [gone](ConnId c) { return c != gone; }, sink) == 1);
    REQUIRE(sink.unpaired_reasons.size() == 1);
    CHECK(sink.unpaired_reasons[0] == (gone == elsewhere ? "node-lost" : "client"));
  }
}

TEST_CASE("healing ends a call whose partner's id moved on") {
  Sink sink;
  PairingState state(sink, Takeover::kReplace, 256);
  REQUIRE(state.open(1, "a", "b").ok());
  REQUIRE(state.open(2, "b", "a").ok());
  state.put_record("b", std::nullopt);  // another node freed b
  sink.sent.clear();
  std::size_t lost = heal(
      state, {"a", "b"}, [](ConnId) { return true; }, sink);
  CHECK(lost == 0);
  CHECK(state.partner_of(1) == 0);
  CHECK(state.record("a"));
  REQUIRE(sink.sent.size() == 1);
  CHECK(sink.sent[0].first == 1);
}

TEST_CASE("while Redis settles, a partner with no place keeps the call; one held by someone else still ends it") {
  Sink sink;
  PairingState state(sink, Takeover::kReplace, 256);
  REQUIRE(state.open(1, "a", "b").ok());
  REQUIRE(state.open(2, "b", "a").ok());
  state.put_record("b", std::nullopt);  // an empty Redis: b's node has not written it back yet
  sink.sent.clear();
  CHECK(heal(
            state, {"a", "b"}, [](ConnId) { return true; }, sink, true) == 0);
  CHECK(state.partner_of(1) == 2);
  CHECK(sink.sent.empty());

  REQUIRE(state.open(3, "b", "z").ok());  // b was opened by someone else meanwhile
  sink.sent.clear();
  heal(
      state, {"a", "b"}, [](ConnId) { return true; }, sink, true);
  CHECK(state.partner_of(1) == 0);
  REQUIRE_FALSE(sink.sent.empty());
  CHECK(sink.sent[0] == std::make_pair(ConnId(1), std::string(R"({"close":1})")));
}
