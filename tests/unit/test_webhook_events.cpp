// Tests for what the webhooks plugin makes of duetd's events
// (plugins/webhooks/events.cpp): each event's body, how a call ended in
// the webhook's words, and that nothing else (no SDP or ICE counts, no
// connection numbers) reaches the receiver.
#include <catch2/catch.hpp>

#include "webhooks/events.hpp"

#include <rapidjson/document.h>

#include <string>

using duet::webhooks::how_call_ended;
using duet::webhooks::rfc3339_ms;
using duet::webhooks::webhook_body;

namespace {

constexpr std::int64_t kNow = 1796653589019;  // 2026-12-07T14:26:29.019Z

rapidjson::Document parsed(const std::optional<std::string> &body) {
  REQUIRE(body);
  rapidjson::Document doc;
  doc.Parse(body->data(), body->size());  // by length: the SSE2 scan of a C string reads past its end
  REQUIRE_FALSE(doc.HasParseError());
  REQUIRE(doc.IsObject());
  return doc;
}

}  // namespace

TEST_CASE("a pairing becomes call.started, with the ids and the node only", "[webhook-events]") {
  const auto body = webhook_body(
      "pairing.paired", R"({"offerer":"bob","answerer":"alice","offerer_conn":7,"answerer_conn":3})", "node-1", kNow);
  auto doc = parsed(body);
  CHECK(std::string(doc["type"].GetString()) == "call.started");
  CHECK(std::string(doc["timestamp"].GetString()) == "2026-12-07T14:26:29.019Z");
  const auto &data = doc["data"];
  CHECK(std::string(data["offerer"].GetString()) == "bob");
  CHECK(std::string(data["answerer"].GetString()) == "alice");
  CHECK(std::string(data["node"].GetString()) == "node-1");
  CHECK(data.MemberCount() == 3);  // no connection numbers
}

TEST_CASE("an unpairing becomes call.ended with who, how and how long", "[webhook-events]") {
  const auto body = webhook_body(
      "pairing.unpaired",
      R"({"local":"alice","remote":"bob","reason":"hangup","duration_ms":61234,"sdp":4,"ice":19,"partner_conn":9})",
      "n", kNow);
  auto doc = parsed(body);
  CHECK(std::string(doc["type"].GetString()) == "call.ended");
  const auto &data = doc["data"];
  CHECK(std::string(data["ended_by"].GetString()) == "alice");
  CHECK(std::string(data["other"].GetString()) == "bob");
  CHECK(std::string(data["how"].GetString()) == "hang-up");
  CHECK(data["duration_ms"].GetUint64() == 61234);
  CHECK_FALSE(data.HasMember("sdp"));
  CHECK_FALSE(data.HasMember("ice"));
  CHECK_FALSE(data.HasMember("partner_conn"));
}

TEST_CASE("how a call ended, in the webhook's words", "[webhook-events]") {
  CHECK(std::string(how_call_ended("hangup")) == "hang-up");
  CHECK(std::string(how_call_ended("client")) == "connection-lost");
  CHECK(std::string(how_call_ended("resume-failed")) == "connection-lost");
  CHECK(std::string(how_call_ended("drain")) == "connection-lost");  // moved by a drain, never resumed
  CHECK(std::string(how_call_ended("timeout")) == "timeout");
  CHECK(std::string(how_call_ended("takeover")) == "replaced");
  CHECK(std::string(how_call_ended("node-lost")) == "node-lost");
  CHECK(std::string(how_call_ended("shutdown")) == "server-shutdown");
  CHECK(std::string(how_call_ended("limit")) == "closed-by-server");
  CHECK(std::string(how_call_ended("something-new")) == "closed-by-server");
}

TEST_CASE("a ring that ended unanswered is call.missed; a declined one call.declined", "[webhook-events]") {
  const std::string ring = R"({"ring":"r1","line":"Grandma","caller":"Tom","reason":"%","rang_ms":30000})";
  auto with = [&](const char *reason) {
    std::string json = ring;
    json.replace(json.find('%'), 1, reason);
    return webhook_body("ring.ended", json, "n", kNow);
  };
  auto missed = parsed(with("missed"));
  CHECK(std::string(missed["type"].GetString()) == "call.missed");
  CHECK(std::string(missed["data"]["reason"].GetString()) == "no-answer");
  CHECK(std::string(missed["data"]["line"].GetString()) == "Grandma");
  CHECK(std::string(missed["data"]["caller"].GetString()) == "Tom");
  CHECK(missed["data"]["rang_ms"].GetUint64() == 30000);
  auto cancelled = parsed(with("cancelled"));
  CHECK(std::string(cancelled["type"].GetString()) == "call.missed");
  CHECK(std::string(cancelled["data"]["reason"].GetString()) == "cancelled");
  auto declined = parsed(with("declined"));
  CHECK(std::string(declined["type"].GetString()) == "call.declined");
  CHECK_FALSE(declined["data"].HasMember("reason"));
  CHECK_FALSE(with("answered-elsewhere"));  // call.started tells of it
}

TEST_CASE("other events, and events that are not JSON objects, make no webhook", "[webhook-events]") {
  CHECK_FALSE(webhook_body("pairing.open", R"({"local":"a","remote":"b"})", "n", kNow));
  CHECK_FALSE(webhook_body("duet.rejected", R"({"code":"bad-request"})", "n", kNow));
  CHECK_FALSE(webhook_body("pairing.paired", "", "n", kNow));
  CHECK_FALSE(webhook_body("pairing.paired", "[1]", "n", kNow));
  CHECK_FALSE(webhook_body("pairing.paired", "{\"offerer\":\"\xff\"}", "n", kNow));  // not UTF-8
}

TEST_CASE("ids pass through escaped, never breaking the body", "[webhook-events]") {
  auto doc = parsed(webhook_body("pairing.paired", R"({"offerer":"a\"b\\c\n","answerer":"\u00e9"})", "n", kNow));
  CHECK(std::string(doc["data"]["offerer"].GetString()) == "a\"b\\c\n");
  CHECK(std::string(doc["data"]["answerer"].GetString()) == "\xC3\xA9");
}

TEST_CASE("timestamps are RFC 3339 in UTC with milliseconds", "[webhook-events]") {
  CHECK(rfc3339_ms(0) == "1970-01-01T00:00:00.000Z");
  CHECK(rfc3339_ms(kNow) == "2026-12-07T14:26:29.019Z");
  CHECK(rfc3339_ms(951782400999) == "2000-02-29T00:00:00.999Z");
}
