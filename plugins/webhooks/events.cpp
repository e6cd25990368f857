#include "events.hpp"

#include <cstdio>
#include <ctime>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace duet::webhooks {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void put(Writer &w, const char *key, std::string_view value) {
  w.Key(key);
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

std::string_view text(const rapidjson::Value &from, const char *key) {
  const auto m = from.FindMember(key);
  if (m == from.MemberEnd() || !m->value.IsString())
    return {};
  return {m->value.GetString(), m->value.GetStringLength()};
}

std::uint64_t number(const rapidjson::Value &from, const char *key) {
  const auto m = from.FindMember(key);
  return m != from.MemberEnd() && m->value.IsUint64() ? m->value.GetUint64() : 0;
}

// The body around data: fill writes data's members.
template <class Fill> std::string body(const char *type, std::string_view node, std::int64_t now_ms, Fill fill) {
  rapidjson::StringBuffer out;
  Writer w(out);
  w.StartObject();
  put(w, "type", type);
  put(w, "timestamp", rfc3339_ms(now_ms));
  w.Key("data");
  w.StartObject();
  fill(w);
  put(w, "node", node);
  w.EndObject();
  w.EndObject();
  return {out.GetString(), out.GetSize()};
}

}  // namespace

const char *how_call_ended(std::string_view reason) {
  if (reason == "hangup")
    return "hang-up";
  if (reason == "client" || reason == "resume-failed" || reason == "drain")
    return "connection-lost";
  if (reason == "timeout")
    return "timeout";
  if (reason == "takeover")
    return "replaced";
  if (reason == "node-lost")
    return "node-lost";
  if (reason == "shutdown")
    return "server-shutdown";
  return "closed-by-server";
}

std::string rfc3339_ms(std::int64_t unix_ms) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm parts{};
  gmtime_r(&seconds, &parts);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1,
                parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, static_cast<int>(unix_ms % 1000));
  return text;
}

std::optional<std::string> webhook_body(std::string_view name, std::string_view json, std::string_view node,
                                        std::int64_t now_ms) {
  rapidjson::Document event;
  event.Parse<rapidjson::kParseValidateEncodingFlag>(json.data(), json.size());
  if (event.HasParseError() || !event.IsObject())
    return std::nullopt;
  if (name == "pairing.paired")
    return body("call.started", node, now_ms, [&](Writer &w) {
      put(w, "offerer", text(event, "offerer"));
      put(w, "answerer", text(event, "answerer"));
    });
  if (name == "pairing.unpaired")
    return body("call.ended", node, now_ms, [&](Writer &w) {
      put(w, "ended_by", text(event, "local"));
      put(w, "other", text(event, "remote"));
      put(w, "how", how_call_ended(text(event, "reason")));
      w.Key("duration_ms");
      w.Uint64(number(event, "duration_ms"));
    });
  if (name == "ring.ended") {
    const std::string_view reason = text(event, "reason");
    const bool missed = reason == "missed" || reason == "cancelled";
    if (!missed && reason != "declined")
      return std::nullopt;  // answered: call.started tells it
    return body(missed ? "call.missed" : "call.declined", node, now_ms, [&](Writer &w) {
      put(w, "ring", text(event, "ring"));
      put(w, "line", text(event, "line"));
      put(w, "caller", text(event, "caller"));
      if (missed)
        put(w, "reason", reason == "missed" ? "no-answer" : "cancelled");
      w.Key("rang_ms");
      w.Uint64(number(event, "rang_ms"));
    });
  }
  return std::nullopt;
}

}  // namespace duet::webhooks
