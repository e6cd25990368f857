// The one C++ translation unit of the core: RapidJSON is a C++ library.
#include "message.h"

#include "duet/utf8.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <optional>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

namespace {

using Pool = rapidjson::MemoryPoolAllocator<rapidjson::CrtAllocator>;
using Document = rapidjson::GenericDocument<rapidjson::UTF8<>, Pool, Pool>;

// Typical messages fit in these buffers, so decoding does not touch malloc.
// Everything runs on the loop thread, hence one decoder state.
alignas(8) char value_buffer[32 * 1024];
alignas(8) char stack_buffer[16 * 1024];
// Messages up to this size are parsed from a NUL-terminated copy, which
// RapidJSON's SIMD scanning needs (RAPIDJSON_SSE2, set by meson.build); its aligned 16-byte loads may read past
// the NUL, so the size is a multiple of 16.
alignas(16) char text_buffer[64 * 1024 + 16];

struct Decoder {
  Pool values{value_buffer, sizeof value_buffer};
  Pool stack{stack_buffer, sizeof stack_buffer};
  std::optional<Document> doc;
  const char *json = nullptr;  // the message the document belongs to
};

Decoder &decoder() {
  static Decoder d;
  return d;
}

// Deep nesting cannot overflow the C stack. The encoding is checked before
// parsing (duet_utf8_valid, shared with plugins), not by RapidJSON character by character.
constexpr unsigned kParseFlags = rapidjson::kParseIterativeFlag;

// Follows an RFC 6901 pointer through objects and arrays without allocating.
const Document::ValueType *resolve(const Document::ValueType &root, const char *p) {
  const Document::ValueType *v = &root;
  if (*p == '\0')
    return v;
  if (*p != '/')
    return nullptr;
  char token[256];
  while (*p == '/') {
    ++p;
    size_t n = 0;
    for (; *p && *p != '/'; ++p) {
      char c = *p;
      if (c == '~') {
        if (p[1] == '0')
          c = '~';
        else if (p[1] == '1')
          c = '/';
        else
          return nullptr;
        ++p;
      }
      if (n + 1 >= sizeof token)
        return nullptr;
      token[n++] = c;
    }
    if (v->IsObject()) {
      const rapidjson::GenericValue<rapidjson::UTF8<>, Pool> name(rapidjson::StringRef(token, n));
      auto it = v->FindMember(name);
      if (it == v->MemberEnd())
        return nullptr;
      v = &it->value;
    } else if (v->IsArray()) {
      token[n] = '\0';
      char *end = nullptr;
      unsigned long index = std::strtoul(token, &end, 10);
      if (n == 0 || *end != '\0' || index >= v->Size())
        return nullptr;
      v = &(*v)[static_cast<rapidjson::SizeType>(index)];
    } else {
      return nullptr;
    }
  }
  return v;
}

}  // namespace

extern "C" int duet__message_decode(const char *json, size_t len, duet_msg_t *msg, const char **why) {
  // RapidJSON stops at a NUL, so whatever follows one would be relayed unread.
  if (std::memchr(json, '\0', len) != nullptr) {
    *why = "A message must not contain a NUL byte.";
    return DUET_EINVAL;
  }
  if (!duet_utf8_valid(reinterpret_cast<const unsigned char *>(json), len)) {
    *why = "A message must be valid UTF-8.";
    return DUET_EINVAL;
  }
  Decoder &d = decoder();
  d.doc.reset();
  d.values.Clear();
  d.stack.Clear();
  d.json = nullptr;
  d.doc.emplace(&d.values, 1024, &d.stack);
  Document &doc = *d.doc;

  if (len < sizeof text_buffer) {
    std::memcpy(text_buffer, json, len);
    text_buffer[len] = '\0';  // the text has no NUL of its own: checked above
    doc.Parse<kParseFlags>(text_buffer);
  } else {
    doc.Parse<kParseFlags>(json, len);
  }
  if (doc.HasParseError()) {
    *why = rapidjson::GetParseError_En(doc.GetParseError());
    return DUET_EINVAL;
  }
  if (!doc.IsObject()) {
    *why = "A message must be a JSON object.";
    return DUET_EINVAL;
  }
  for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
    if (std::strcmp(it->name.GetString(), "remote") == 0)
      continue;
    msg->type = it->name.GetString();
    msg->type_len = it->name.GetStringLength();
    msg->json = json;
    msg->json_len = len;
    d.json = json;
    return 0;
  }
  *why = "A message must be a JSON object with a type member, such as {\"open\":{...}}.";
  return DUET_EINVAL;
}

extern "C" int duet__message_string(const duet_msg_t *msg, const char *pointer, const char **out, size_t *out_len) {
  Decoder &d = decoder();
  if (!d.doc || msg == nullptr || msg->json != d.json || pointer == nullptr)
    return DUET_EINVAL;
  const Document::ValueType *v = resolve(*d.doc, pointer);
  if (v == nullptr)
    return DUET_ENOENT;
  if (!v->IsString())
    return DUET_EINVAL;
  *out = v->GetString();
  *out_len = v->GetStringLength();
  return 0;
}

extern "C" size_t duet__json_escape(char *out, size_t out_size, const char *s) {
  static const char hex[] = "0123456789abcdef";
  if (out_size < 3) {
    if (out_size > 0)
      out[0] = '\0';
    return 0;
  }
  const size_t room = out_size - 2;  // the closing quote and the NUL always fit
  const unsigned char *p = reinterpret_cast<const unsigned char *>(s);
  const size_t total = std::strlen(s);
  size_t n = 0;
  out[n++] = '"';
  for (size_t i = 0; i < total;) {
    char piece[6];
    size_t len = 0, take = 1;
    unsigned char c = p[i];
    if (c == '"' || c == '\\') {
      piece[len++] = '\\';
      piece[len++] = static_cast<char>(c);
    } else if (c < 0x20) {
      std::memcpy(piece, "\\u00", 4);
      len = 4;
      piece[len++] = hex[c >> 4];
      piece[len++] = hex[c & 15];
    } else if (c < 0x80) {
      piece[len++] = static_cast<char>(c);
    } else if ((take = duet_utf8_sequence_length(p + i, total - i)) != 0) {
      std::memcpy(piece, p + i, take);
      len = take;
    } else {
      std::memcpy(piece, "\\ufffd", 6);  // a JSON text must be valid UTF-8
      len = 6;
      take = 1;
    }
    if (n + len > room)
      break;  // cut before a whole character, never inside one
    std::memcpy(out + n, piece, len);
    n += len;
    i += take;
  }
  out[n++] = '"';
  out[n] = '\0';
  return n;
}

extern "C" size_t duet__error_frame(char *out, const char *code, const char *message) {
  char code_json[DUET_ERROR_CODE_MAX], message_json[DUET_ERROR_MESSAGE_MAX];
  duet__json_escape(code_json, sizeof code_json, code);
  duet__json_escape(message_json, sizeof message_json, message);
  int n = std::snprintf(out, DUET_ERROR_FRAME_MAX, "{\"error\":{\"code\":%s,\"message\":%s}}", code_json, message_json);
  return n < 0 ? 0 : static_cast<size_t>(n);
}
