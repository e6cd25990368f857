// The pairing plugin's reading of messages (plugins/pairing/routing.cpp) on
// its local store: which messages are pairing's and what each becomes.
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "local_store.hpp"
#include "routing.hpp"

using namespace duet::pairing;

namespace {

struct Sink : Actions {
  std::vector<std::pair<ConnId, std::string>> sent;
  void send(ConnId to, std::string_view json) override { sent.emplace_back(to, std::string(json)); }
  void send_error(ConnId, const char *, const char *) override {}
  void close(ConnId, int, const char *) override {}
  void opened(ConnId, std::string_view, std::string_view) override {}
  void paired(ConnId, ConnId, std::string_view, std::string_view) override {}
  void unpaired(const CallEnded &) override {}
  void start_grace(const std::string &) override {}
  void cancel_grace(const std::string &) override {}
  void resumed(ConnId, ConnId, std::string_view) override {}
  std::string new_token() override { return "t"; }
};

// A message as its members by JSON Pointer.
StringAt members(const std::map<std::string, std::string> &m) {
  return [&m](const char *pointer) -> std::optional<std::string_view> {
    auto it = m.find(pointer);
    return it == m.end() ? std::nullopt : std::optional<std::string_view>(it->second);
  };
}

}  // namespace

TEST_CASE("only open, sdp and ice are pairing's") {
  std::map<std::string, std::string> none;
  CHECK(read_request("chat", members(none), true).kind == Request::Kind::kNotOurs);
  CHECK(read_request("close", members(none), true).kind == Request::Kind::kNotOurs);
  CHECK(read_request("", members(none), true).kind == Request::Kind::kNotOurs);
}

TEST_CASE("a message lacking its members is a bad request") {
  std::map<std::string, std::string> only_local{{"/open/local", "a"}};
  Request open = read_request("open", members(only_local), true);
  CHECK(open.kind == Request::Kind::kBad);
  CHECK(std::string(open.error.code) == "bad-request");
  std::map<std::string, std::string> none;
  Request ice = read_request("ice", members(none), true);
  CHECK(ice.kind == Request::Kind::kBad);
  Sink sink;
  LocalStore store(sink, StoreConfig{});
  CHECK(std::string(route(store, 1, ice, "{}").code) == "bad-request");
}

TEST_CASE("resume is read only when resuming is on") {
  std::map<std::string, std::string> m{{"/open/local", "a"}, {"/open/remote", "b"}, {"/open/resume", "tok"}};
  Request on = read_request("open", members(m), true);
  REQUIRE(on.kind == Request::Kind::kOpen);
  CHECK(on.local == "a");
  CHECK(on.remote == "b");
  CHECK(on.resume == std::optional<std::string_view>("tok"));
  CHECK_FALSE(read_request("open", members(m), false).resume);
}

TEST_CASE("open pairs through the store, and sdp goes whole to the partner") {
  Sink sink;
  LocalStore store(sink, StoreConfig{});
  std::map<std::string, std::string> a{{"/open/local", "a"}, {"/open/remote", "b"}};
  std::map<std::string, std::string> b{{"/open/local", "b"}, {"/open/remote", "a"}};
  REQUIRE(route(store, 1, read_request("open", members(a), true), "").ok());
  REQUIRE(route(store, 2, read_request("open", members(b), true), "").ok());
  CHECK(store.pairs() == 1);
  sink.sent.clear();
  std::map<std::string, std::string> sdp{{"/remote", "b"}};
  Request r = read_request("sdp", members(sdp), true);
  REQUIRE(r.kind == Request::Kind::kRelay);
  CHECK(r.relay == PairingState::Kind::kSdp);
  REQUIRE(route(store, 1, r, R"({"sdp":1,"remote":"b"})").ok());
  REQUIRE(sink.sent.size() == 1);
  CHECK(sink.sent[0].first == 2);
  CHECK(sink.sent[0].second == R"({"sdp":1,"remote":"b"})");
  std::map<std::string, std::string> wrong{{"/remote", "c"}};
  CHECK(std::string(route(store, 1, read_request("ice", members(wrong), true), "{}").code) == "not-your-partner");
}

TEST_CASE("route names the partner without sending") {
  Sink sink;
  PairingState s(sink, Takeover::kReplace, 256);
  REQUIRE(s.open(1, "a", "b").ok());
  CHECK(std::string(s.route(1, PairingState::Kind::kIce, "b").outcome.code) == "not-paired");
  REQUIRE(s.open(2, "b", "a").ok());
  sink.sent.clear();
  PairingState::Route r = s.route(1, PairingState::Kind::kIce, "b");
  CHECK(r.outcome.ok());
  CHECK(r.to == 2);
  CHECK(sink.sent.empty());
  CHECK(s.entry_of(1)->ice == 1);
}
