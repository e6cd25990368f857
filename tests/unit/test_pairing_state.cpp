// The pairing rules (README.md, "Protocol"), checked without any sockets.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "pairing_state.hpp"

using namespace duet::pairing;

namespace {

struct Recorder : Actions {
  struct Sent {
    ConnId to;
    std::string json;
  };
  std::vector<Sent> sent;
  std::vector<std::pair<ConnId, std::string>> errors;
  std::vector<std::pair<ConnId, int>> closed;
  int pairs = 0, unpairs = 0;

  void send(ConnId to, std::string_view json) override { sent.push_back({to, std::string(json)}); }
  void send_error(ConnId to, const char *code, const char *) override { errors.emplace_back(to, code); }
  void close(ConnId conn, int code, const char *) override { closed.emplace_back(conn, code); }
  void opened(ConnId, std::string_view, std::string_view) override { opens++; }
  void paired(ConnId, ConnId, std::string_view, std::string_view) override { pairs++; }
  void unpaired(const CallEnded &call) override {
    unpairs++;
    last_sdp = call.sdp;
    last_ice = call.ice;
    last_reason = call.reason;
  }
  void start_grace(const std::string &id) override { graces.push_back(id); }
  void cancel_grace(const std::string &id) override { cancelled.push_back(id); }
  void resumed(ConnId, ConnId, std::string_view) override { resumes++; }
  std::string new_token() override { return "t" + std::to_string(++tokens); }
  std::vector<std::string> graces, cancelled;
  int resumes = 0, tokens = 0;
  int opens = 0;
  std::uint64_t last_sdp = 0, last_ice = 0;
  std::string last_reason;

  std::vector<std::string> to(ConnId c) const {
    std::vector<std::string> out;
    for (auto &s : sent)
      if (s.to == c)
        out.push_back(s.json);
    return out;
  }
};

}  // namespace

TEST_CASE("mutual requests start the waiting side as answerer and the newcomer as offerer") {
  Recorder r;
  PairingState s(r, Takeover::kReplace, 256);
  REQUIRE(s.open(1, "alice", "bob").ok());
  CHECK(r.sent.empty());
  REQUIRE(s.open(2, "bob", "alice").ok());
  CHECK(r.to(1) == std::vector<std::string>{R"({"start":"answer"})"});
  CHECK(r.to(2) == std::vector<std::string>{R"({"start":"offer"})"});
  CHECK(s.partner_of(1) == 2);
  CHECK(s.partner_of(2) == 1);
  CHECK(r.pairs == 1);
}

TEST_CASE("a one-sided request does not start a pair") {
  Recorder r;
  PairingState s(r, Takeover::kReplace, 256);
  REQUIRE(s.open(1, "alice", "bob").ok());
  REQUIRE(s.open(2, "bob", "carol").ok());
  CHECK(r.sent.empty());
  CHECK(s.partner_of(1) == 0);
  CHECK(s.partner_of(2) == 0);
}

TEST_CASE("relay reaches only the partner and refuses other names") {
  Recorder r;
  PairingState s(r, Takeover::kReplace, 256);
  s.open(1, "alice", "bob");
  s.open(2, "bob", "alice");
  s.open(3, "carol", "bob");
  r.sent.clear();
  CHECK(s.relay(1, PairingState::Kind::kSdp, "bob", R"({"sdp":{},"remote":"bob"})").ok());
  CHECK(r.to(2) == std::vector<std::string>{R"({"sdp":{},"remote":"bob"})"});
  CHECK(std::string(s.relay(3, PairingState::Kind::kSdp, "bob", "{}").code) == "not-paired");
  CHECK(std::string(s.relay(1, PairingState::Kind::kSdp, "carol", "{}").code) == "not-your-partner");
  CHECK(r.to(3).empty());
  CHECK(r.sent.size() == 1);
}

TEST_CASE("relay before open or before start is not-paired") {
  Recorder r;
  PairingState s(r, Takeover::kReplace, 256);
  CHECK(std::string(s.relay(1, PairingState::Kind::kSdp, "bob", "{}").code) == "not-paired");
  s.open(1, "alice", "bob");
  CHECK(std::string(s.relay(1, PairingState::Kind::kSdp, "bob", "{}").code) == "not-paired");
}

TEST_CASE("closing one side sends close to the partner, which can pair again") {
  Recorder r;
  PairingState s(r, Takeover::kReplace, 256);
  s.open(1, "alice", "bob");
  s.open(2, "bob", "alice");
  r.sent.clear();
  s.closed(2, "client");
  CHECK(r.to(1) == std::vector<std::string>{R"({"close":1})"});
  CHECK(s.partner_of(1) == 0);
  CHECK(!s.is_registered(2));
  REQUIRE(s.open(4, "bob", "alice").ok());
  CHECK(r.to(1).back() == R"({"start":"answer"})");
  CHECK(r.to(4) == std::vector<std::string>{R"({"start":"offer"})"});
  CHECK(r.unpairs == 1);
}

TEST_CASE("a newer connection with the same id replaces the older by default") {
  Recorder r;
  PairingState s(r, Takeover::kReplace, 256);
  s.open(1, "alice", "bob");
  s.open(2, "bob", "alice");
  r.sent.clear();
  REQUIRE(s.open(3, "bob", "alice").ok());
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0] == std::make_pair(ConnId{2}, std::string("replaced")));
  CHECK(r.closed == std::vector<std::pair<ConnId, int>>{{2, kCloseReplaced}});
  CHECK(r.to(1) == std::vector<std::string>{R"({"close":1})", R"({"start":"answer"})"});
  CHECK(r.to(3) == std::vector<std::string>{R"({"start":"offer"})"});
  CHECK(!s.is_registered(2));
  s.closed(2, "client");  // the replaced socket's close arrives later: no effect
  CHECK(s.partner_of(1) == 3);
}

TEST_CASE("with the refuse policy the newcomer gets id-taken and the older stays") {
  Recorder r;
  PairingState s(r, Takeover::kRefuse, 256);
  s.open(1, "alice", "bob");
  Outcome o = s.open(2, "alice", "bob");
  REQUIRE(!o.ok());
  CHECK(std::string(o.code) == "id-taken");
  CHECK(s.is_registered(1));
  CHECK(!s.is_registered(2));
  CHECK(r.closed.empty());
}

TEST_CASE("bad ids are refused with bad-request") {
  Recorder r;
  PairingState s(r, Takeover::kReplace, 8);
  CHECK(std::string(s.open(1, "", "bob").code) == "bad-request");
  CHECK(std::string(s.open(1, "alice", "").code) == "bad-request");
  CHECK(std::string(s.open(1, "alice", "alice").code) == "bad-request");
  CHECK(std::string(s.open(1, "abcdefghi", "bob").code) == "bad-request");
  CHECK(std::string(s.open(1, std::string("a\nb"), "bob").code) == "bad-request");
  CHECK(s.registered() == 0);
}

TEST_CASE("a second open on the same connection is already-open") {
  Recorder r;
  PairingState s(r, Takeover::kReplace, 256);
  REQUIRE(s.open(1, "alice", "bob").ok());
  CHECK(std::string(s.open(1, "alice", "carol").code) == "already-open");
}

TEST_CASE("three pairs at once keep their messages apart") {
  Recorder r;
  PairingState s(r, Takeover::kReplace, 256);
  for (ConnId i = 0; i < 3; i++) {
    s.open(10 + i, "a" + std::to_string(i), "b" + std::to_string(i));
    s.open(20 + i, "b" + std::to_string(i), "a" + std::to_string(i));
  }
  r.sent.clear();
  for (ConnId i = 0; i < 3; i++)
    REQUIRE(s.relay(10 + i, PairingState::Kind::kSdp, "b" + std::to_string(i), "m" + std::to_string(i)).ok());
  for (ConnId i = 0; i < 3; i++)
    CHECK(r.to(20 + i) == std::vector<std::string>{"m" + std::to_string(i)});
}

TEST_CASE("a call that ends reports its relayed message counts and reason") {
  Recorder r;
  PairingState s(r, Takeover::kReplace, 256);
  s.open(1, "alice", "bob");
  s.open(2, "bob", "alice");
  CHECK(r.opens == 2);
  CHECK(s.pairs() == 1);
  s.relay(2, PairingState::Kind::kSdp, "alice", "offer");
  s.relay(1, PairingState::Kind::kSdp, "bob", "answer");
  s.relay(1, PairingState::Kind::kIce, "bob", "c1");
  s.relay(2, PairingState::Kind::kIce, "alice", "c2");
  s.relay(2, PairingState::Kind::kIce, "alice", "c3");
  s.closed(1, "timeout");
  CHECK(r.last_sdp == 2);
  CHECK(r.last_ice == 3);
  CHECK(r.last_reason == "timeout");
  CHECK(s.pairs() == 0);
}

TEST_CASE("tutorial clients get start without a token and no held place") {
  Recorder r;
  PairingState s(r, Takeover::kReplace, 256);
  s.open(1, "alice", "bob");
  s.open(2, "bob", "alice");
  CHECK(r.to(1) == std::vector<std::string>{R"({"start":"answer"})"});
  s.closed(1, "client");
  CHECK(r.graces.empty());
  CHECK(r.to(2).back() == R"({"close":1})");
}

TEST_CASE("a client that asked to resume gets a token with start") {
  Recorder r;
  PairingState s(r, Takeover::kReplace, 256);
  s.open(1, "alice", "bob", std::string_view(""));
  s.open(2, "bob", "alice");
  CHECK(r.to(1) == std::vector<std::string>{R"({"start":"answer","resume":"t1"})"});
  CHECK(r.to(2) == std::vector<std::string>{R"({"start":"offer"})"});
}

TEST_CASE("a dropped client that resumes with its token keeps its pair and both hear resumed") {
  Recorder r;
  PairingState s(r, Takeover::kReplace, 256);
  s.open(1, "alice", "bob", std::string_view(""));
  s.open(2, "bob", "alice", std::string_view(""));
  // bob, the newcomer and offerer, got token t1; alice, who waited, t2
  r.sent.clear();
  s.closed(1, "client");
  CHECK(r.graces == std::vector<std::string>{"alice"});
  CHECK(r.to(2).empty());
  CHECK(s.is_away("alice"));
  CHECK(std::string(s.relay(2, PairingState::Kind::kIce, "alice", "c").code) == "partner-away");
  REQUIRE(s.open(3, "alice", "bob", std::string_view("t2")).ok());
  CHECK(r.cancelled == std::vector<std::string>{"alice"});
  CHECK(s.partner_of(3) == 2);
  CHECK(s.partner_of(2) == 3);
  CHECK(r.to(3) == std::vector<std::string>{R"({"resumed":"answer","resume":"t3"})"});
  CHECK(r.to(2) == std::vector<std::string>{R"({"resumed":"offer"})"});
  CHECK(r.resumes == 1);
  CHECK(r.unpairs == 0);
  CHECK(s.relay(2, PairingState::Kind::kSdp, "alice", "offer").ok());
  CHECK(r.to(3).back() == "offer");
}

TEST_CASE("a wrong token ends the held call and the newcomer starts afresh") {
  Recorder r;
  PairingState s(r, Takeover::kReplace, 256);
  s.open(1, "alice", "bob", std::string_view(""));
  s.open(2, "bob", "alice");
  r.sent.clear();
  s.closed(1, "client");
  REQUIRE(s.open(3, "alice", "bob", std::string_view("forged")).ok());
  CHECK(!s.is_away("alice"));
  CHECK(r.to(2) == std::vector<std::string>{R"({"close":1})", R"({"start":"answer"})"});
  CHECK(r.to(3).size() == 1);
  CHECK(r.to(3)[0].rfind(R"({"start":"offer","resume":")", 0) == 0);
  CHECK(r.unpairs == 1);
  CHECK(r.last_reason == "resume-failed");
}

TEST_CASE("when the grace period ends the partner is told and the id is free") {
  Recorder r;
  PairingState s(r, Takeover::kReplace, 256);
  s.open(1, "alice", "bob", std::string_view(""));
  s.open(2, "bob", "alice");
  r.sent.clear();
  s.closed(1, "timeout");
  s.expire("alice");
  CHECK(r.to(2) == std::vector<std::string>{R"({"close":1})"});
  CHECK(r.last_reason == "timeout");
  CHECK(s.pairs() == 0);
  CHECK(s.open(5, "alice", "bob").ok());
  CHECK(s.partner_of(5) == 2);
}

TEST_CASE("takeover and shutdown do not hold a place") {
  Recorder r;
  PairingState s(r, Takeover::kReplace, 256);
  s.open(1, "alice", "bob", std::string_view(""));
  s.open(2, "bob", "alice");
  s.closed(1, "shutdown");
  CHECK(r.graces.empty());
  CHECK(!s.is_away("alice"));
}

TEST_CASE("if the partner leaves while the other is away the held place goes too") {
  Recorder r;
  PairingState s(r, Takeover::kReplace, 256);
  s.open(1, "alice", "bob", std::string_view(""));
  s.open(2, "bob", "alice");
  s.closed(1, "client");
  s.closed(2, "client");
  CHECK(!s.is_away("alice"));
  CHECK(r.cancelled == std::vector<std::string>{"alice"});
  CHECK(s.pairs() == 0);
  CHECK(s.registered() == 0);
}

TEST_CASE("a deliberate hang-up holds no place even for a client that can resume") {
  Recorder r;
  PairingState s(r, Takeover::kReplace, 256);
  s.open(1, "alice", "bob", std::string_view(""));
  s.open(2, "bob", "alice");
  r.sent.clear();
  s.closed(1, "hangup");
  CHECK(r.graces.empty());
  CHECK(r.to(2) == std::vector<std::string>{R"({"close":1})"});
}

TEST_CASE("the token holder on a new connection takes its place before the old one is noticed dead") {
  Recorder r;
  PairingState s(r, Takeover::kRefuse, 256);
  s.open(1, "alice", "bob", std::string_view(""));
  s.open(2, "bob", "alice");
  r.sent.clear();
  // Only alice asked to resume: she got t1. Her old socket 1 is still registered.
  REQUIRE(s.open(3, "alice", "bob", std::string_view("t1")).ok());
  CHECK(r.closed == std::vector<std::pair<ConnId, int>>{{1, kCloseReplaced}});
  CHECK(r.errors.empty());
  CHECK(s.partner_of(3) == 2);
  CHECK(s.partner_of(2) == 3);
  CHECK(r.to(2) == std::vector<std::string>{R"({"resumed":"offer"})"});
  CHECK(r.to(3) == std::vector<std::string>{R"({"resumed":"answer","resume":"t2"})"});
  s.closed(1, "client");  // the old socket's close, when it comes, changes nothing
  CHECK(s.partner_of(3) == 2);
  CHECK(r.unpairs == 0);
}

TEST_CASE("a record read from one state and put into another carries the call (the cluster's copies)") {
  Recorder r1, r2;
  PairingState a(r1, Takeover::kReplace, 256), b(r2, Takeover::kReplace, 256);
  REQUIRE(a.open(1, "alice", "bob", "").ok());
  REQUIRE(a.open(2, "bob", "alice", "").ok());
  for (const char *id : {"alice", "bob"})
    b.put_record(id, a.record(id));
  CHECK(b.partner_of(1) == 2);
  REQUIRE(b.relay(2, PairingState::Kind::kIce, "alice", "{\"ice\":1}").ok());
  CHECK(r2.to(1) == std::vector<std::string>{"{\"ice\":1}"});
  // alice drops and can resume: her place is away, and moves like any other.
  b.closed(1, "client");
  REQUIRE(b.record("alice"));
  CHECK(b.record("alice")->conn == 0);
  CHECK(b.record("alice")->waiting == 2);
  a.put_record("alice", b.record("alice"));
  a.put_record("bob", b.record("bob"));
  CHECK(a.is_away("alice"));
  REQUIRE(a.open(3, "alice", "bob", b.record("alice")->entry.token).ok());
  CHECK(a.partner_of(3) == 2);
  // An id put as free is free: its connection's place is gone.
  a.put_record("bob", std::nullopt);
  CHECK(!a.is_registered(2));
}

TEST_CASE("an orphan partner can be closed: its partner hears close") {
  Recorder r;
  PairingState s(r, Takeover::kReplace, 256);
  REQUIRE(s.open(1, "alice", "bob").ok());
  REQUIRE(s.open(2, "bob", "alice").ok());
  // bob's id moved on elsewhere; his old connection stays only as alice's partner.
  PairingState::Entry ghost = *s.entry_of(2);
  s.put_record("bob", std::nullopt);
  s.put_orphan(2, ghost);
  s.closed(2, "client");
  CHECK(r.to(1).back() == "{\"close\":1}");
  CHECK(s.partner_of(1) == 0);
}
