#include "codec.hpp"

#include <charconv>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace duet::cluster {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void put(Writer &w, const char *key, std::string_view s) {
  w.Key(key);
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void put(Writer &w, const char *key, const Where &where) {
  w.Key(key);
  w.StartArray();
  w.Uint(where.node);
  w.Uint64(where.conn);
  w.EndArray();
}

void put_place(Writer &w, const Place &p) {
  put(w, "c", p.conn);
  put(w, "l", p.local);
  put(w, "r", p.remote);
  put(w, "p", p.partner);
  put(w, "ap", p.away_partner);
  w.Key("cr");
  w.Bool(p.can_resume);
  w.Key("o");
  w.Bool(p.offerer);
  put(w, "t", p.token);
  w.Key("pa");
  w.Uint64(p.paired_unix_ms);
  w.Key("s");
  w.Uint64(p.sdp);
  w.Key("i");
  w.Uint64(p.ice);
  put(w, "w", p.waiting);
  put(w, "why", p.reason);
}

bool get(const rapidjson::Value &o, const char *key, std::string &out) {
  auto it = o.FindMember(key);
  if (it == o.MemberEnd() || !it->value.IsString())
    return false;
  out.assign(it->value.GetString(), it->value.GetStringLength());
  return true;
}

bool get(const rapidjson::Value &o, const char *key, Where &out) {
  auto it = o.FindMember(key);
  if (it == o.MemberEnd() || !it->value.IsArray() || it->value.Size() != 2 || !it->value[0].IsUint() ||
      !it->value[1].IsUint64())
    return false;
  out = {it->value[0].GetUint(), it->value[1].GetUint64()};
  return true;
}

bool get(const rapidjson::Value &o, const char *key, std::uint64_t &out) {
  auto it = o.FindMember(key);
  if (it == o.MemberEnd() || !it->value.IsUint64())
    return false;
  out = it->value.GetUint64();
  return true;
}

bool get(const rapidjson::Value &o, const char *key, bool &out) {
  auto it = o.FindMember(key);
  if (it == o.MemberEnd() || !it->value.IsBool())
    return false;
  out = it->value.GetBool();
  return true;
}

std::optional<Place> get_place(const rapidjson::Value &o) {
  Place p;
  if (get(o, "c", p.conn) && get(o, "l", p.local) && get(o, "r", p.remote) && get(o, "p", p.partner) &&
      get(o, "ap", p.away_partner) && get(o, "cr", p.can_resume) && get(o, "o", p.offerer) && get(o, "t", p.token) &&
      get(o, "pa", p.paired_unix_ms) && get(o, "s", p.sdp) && get(o, "i", p.ice) && get(o, "w", p.waiting) &&
      get(o, "why", p.reason))
    return p;
  return std::nullopt;
}

// "123 45\n" -> the numbers before the newline; rest is what follows it.
bool header(std::string_view text, std::uint64_t *a, std::uint64_t *b, std::string_view &rest) {
  auto nl = text.find('\n');
  if (nl == std::string_view::npos || nl < 2 || text[1] != ' ')
    return false;
  const char *p = text.data() + 2, *end = text.data() + nl;
  auto r = std::from_chars(p, end, *a);
  if (r.ec != std::errc())
    return false;
  p = r.ptr;
  if (b) {
    if (p == end || *p != ' ')
      return false;
    r = std::from_chars(p + 1, end, *b);
    if (r.ec != std::errc())
      return false;
    p = r.ptr;
  }
  rest = text.substr(nl + 1);
  return p == end;
}

}  // namespace

std::string encode(const Stored &stored) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("v");
  w.Uint64(stored.version);
  if (stored.place) {
    w.Key("place");
    w.StartObject();
    put_place(w, *stored.place);
    w.EndObject();
  }
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

std::string encode_place(const std::optional<Place> &place) { return place ? encode({0, place}) : std::string(); }

std::optional<Stored> decode(std::string_view json) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject())
    return std::nullopt;
  Stored s;
  if (!get(doc, "v", s.version))
    return std::nullopt;
  if (auto it = doc.FindMember("place"); it != doc.MemberEnd()) {
    if (!it->value.IsObject() || !(s.place = get_place(it->value)))
      return std::nullopt;
  }
  return s;
}

std::string frame_send(std::uint64_t conn, std::string_view json) {
  return "S " + std::to_string(conn) + "\n" + std::string(json);
}

std::string frame_error(std::uint64_t conn, std::string_view code, std::string_view message) {
  return "E " + std::to_string(conn) + " " + std::to_string(code.size()) + "\n" + std::string(code) +
         std::string(message);
}

std::string frame_close(std::uint64_t conn, int ws_code, std::string_view reason) {
  return "X " + std::to_string(conn) + " " + std::to_string(ws_code) + "\n" + std::string(reason);
}

std::string frame_update(std::string_view id, std::string_view record) {
  return "U " + std::to_string(id.size()) + "\n" + std::string(id) + std::string(record);
}

std::string frame_grace(std::string_view token, std::string_view id) {
  return "G " + std::to_string(token.size()) + "\n" + std::string(token) + std::string(id);
}

std::optional<Frame> parse_frame(std::string_view text) {
  if (text.empty())
    return std::nullopt;
  Frame f;
  f.kind = text[0];
  std::uint64_t a = 0, b = 0;
  std::string_view rest;
  switch (f.kind) {
  case 'S':
    if (!header(text, &a, nullptr, rest))
      return std::nullopt;
    f.conn = a;
    f.a = rest;
    return f;
  case 'E':
  case 'X':
    if (!header(text, &a, &b, rest) || (f.kind == 'E' && b > rest.size()) || (f.kind == 'X' && b > 4999))
      return std::nullopt;
    f.conn = a;
    if (f.kind == 'E') {
      f.a = rest.substr(0, b);
      f.b = rest.substr(b);
    } else {
      f.code = static_cast<int>(b);
      f.a = rest;
    }
    return f;
  case 'U':
  case 'G':
    if (!header(text, &a, nullptr, rest) || a > rest.size())
      return std::nullopt;
    f.a = rest.substr(0, a);
    f.b = rest.substr(a);
    return f;
  default:
    return std::nullopt;
  }
}

}  // namespace duet::cluster
