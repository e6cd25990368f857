// The ring messages on the wire: reading a request's members with their
// types checked, and writing answers whose strings are escaped (a caller's
// name cannot forge a member). Each message is one top-level member naming
// it, like the tutorial's {"open":{...}}.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace duet::ring {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

// The body of {"TYPE":{...}}. Absent members are nullopt; a member of the
// wrong type (or a body that is not an object) makes ok() false.
class Request {
public:
  Request(std::string_view json, std::string_view type) {
    doc_.Parse(json.data(), json.size());
    if (!doc_.HasParseError() && doc_.IsObject()) {
      auto it = doc_.FindMember(rapidjson::Value(rapidjson::StringRef(type.data(), type.size())));
      if (it != doc_.MemberEnd() && it->value.IsObject())
        body_ = &it->value;
    }
  }
  bool ok() const { return body_ != nullptr && !wrong_type_; }
  std::optional<std::string> text(const char *name) { return string_in(body_, name); }
  // A string member of an object member: text("keys", "auth").
  std::optional<std::string> text(const char *object, const char *name) {
    if (!body_)
      return std::nullopt;
    auto it = body_->FindMember(object);
    if (it == body_->MemberEnd())
      return std::nullopt;
    if (!it->value.IsObject()) {
      wrong_type_ = true;
      return std::nullopt;
    }
    return string_in(&it->value, name);
  }

private:
  // name's string in the object at value; a member of another type makes
  // ok() false.
  std::optional<std::string> string_in(const rapidjson::Value *value, const char *name) {
    if (!value)
      return std::nullopt;
    auto it = value->FindMember(name);
    if (it == value->MemberEnd())
      return std::nullopt;
    if (!it->value.IsString()) {
      wrong_type_ = true;
      return std::nullopt;
    }
    return std::string(it->value.GetString(), it->value.GetStringLength());
  }

  rapidjson::Document doc_;
  const rapidjson::Value *body_ = nullptr;
  bool wrong_type_ = false;
};

// A string member of a JSON object (an event's), or nullopt.
inline std::optional<std::string> string_member(const rapidjson::Document &doc, const char *name) {
  if (doc.HasParseError() || !doc.IsObject())
    return std::nullopt;
  auto it = doc.FindMember(name);
  if (it == doc.MemberEnd() || !it->value.IsString())
    return std::nullopt;
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

inline std::optional<std::int64_t> int64_member(const rapidjson::Document &doc, const char *name) {
  if (doc.HasParseError() || !doc.IsObject())
    return std::nullopt;
  auto it = doc.FindMember(name);
  if (it == doc.MemberEnd() || !it->value.IsInt64())
    return std::nullopt;
  return it->value.GetInt64();
}

inline void put(Writer &w, const char *key, std::string_view value) {
  w.Key(key);
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}
// Named apart: a bool overload of put would catch const char * values.
inline void put_bool(Writer &w, const char *key, bool value) {
  w.Key(key);
  w.Bool(value);
}
inline void put(Writer &w, const char *key, std::int64_t value) {
  w.Key(key);
  w.Int64(value);
}

// { what fill writes }
template <class Fill> std::string object(Fill fill) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  fill(w);
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

// {"type":{ what fill writes }}
template <class Fill> std::string message(const char *type, Fill fill) {
  return object([&](Writer &w) {
    w.Key(type);
    w.StartObject();
    fill(w);
    w.EndObject();
  });
}

}  // namespace duet::ring
