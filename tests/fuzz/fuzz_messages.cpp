// libFuzzer target: the core's message decoder (core/message.cpp) feeding the
// pairing rules (plugins/pairing/pairing_state.cpp) through the pairing
// plugin's own reading of messages (routing.cpp) and its local store
// (local_store.hpp), driven by a script of steps from several connections.
//
// Input: text, one step per line (seeds in corpus/fuzz_messages/ read like
// this):
//
//   #r #n #i8      options on a first line: takeover=refuse, resume off,
//                  max-id-bytes=8 (any combination; default replace, on, 256)
//   3+             connection slot 3 connects (slots 0-7; a slot that
//                  sends while unconnected connects first)
//   3>{"open":{"local":"a","remote":"b"}}
//                  slot 3 sends the rest of the line as one text message
//   3-c            slot 3's connection goes: c=client t=timeout s=shutdown
//                  e=server l=limit k=takeover (as duet_close_reason_name)
//   !a             the resume grace of id "a" runs out ("!" alone: the
//                  oldest pending grace)
//   ?/open/local   look up a JSON Pointer in the last decoded message
//
// After every step the invariants of issue 6 are checked; a violation traps.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "local_store.hpp"
#include "message.h"
#include "pairing_state.hpp"
#include "routing.hpp"

using duet::pairing::Actions;
using duet::pairing::CallEnded;
using duet::pairing::ConnId;
using duet::pairing::LocalStore;
using duet::pairing::Outcome;
using duet::pairing::PairingState;
using duet::pairing::Request;
using duet::pairing::StoreConfig;
using duet::pairing::Takeover;
using duet::pairing::read_request;
using duet::pairing::route;

namespace {

constexpr int kSlots = 8;

[[noreturn]] void violation(const char *what) {
  std::fprintf(stderr, "fuzz_messages: invariant violated: %s\n", what);
  __builtin_trap();
}

#define CHECK(cond, what)  \
  do {                     \
    if (!(cond))           \
      violation(what);     \
  } while (0)

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size())
      return false;
    for (size_t k = 1; k <= n; k++) {
      unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n + 1;
  }
  return true;
}

struct Conn {
  ConnId id = 0;           // 0: slot empty
  bool closing = false;    // the rules asked the core to close it
  std::string local;       // from opened() / resumed()
};

struct Sent {
  ConnId to;
  std::string json;
};

// What the pairing plugin would ask of the host, recorded and checked.
class Recorder : public Actions {
 public:
  std::map<ConnId, Conn *> live;       // connected, not yet closed
  std::vector<Sent> sent;              // during the current step
  std::vector<ConnId> to_close;        // close() requests during the step
  std::vector<std::string> graces;     // pending, oldest first
  std::map<ConnId, std::string> locals;  // every id a connection registered under
  unsigned tokens = 0;
  std::string expiring;  // the id whose grace ran out, during expire()

  bool is_live(ConnId c) const {
    auto it = live.find(c);
    return it != live.end() && !it->second->closing;
  }

  void send(ConnId to, std::string_view json) override {
    CHECK(is_live(to), "send to a connection that is gone or being closed");
    sent.push_back({to, std::string(json)});
  }
  void send_error(ConnId to, const char *code, const char *message) override {
    CHECK(is_live(to), "send_error to a connection that is gone");
    CHECK(code && *code && message && *message, "error without code or message");
  }
  void close(ConnId conn, int ws_code, const char *reason) override {
    CHECK(is_live(conn), "close of a connection that is gone");
    CHECK(ws_code >= 1000 && ws_code <= 4999 && reason, "bad close code");
    live[conn]->closing = true;
    to_close.push_back(conn);
  }
  void opened(ConnId conn, std::string_view local, std::string_view) override {
    CHECK(is_live(conn), "opened() for a connection that is gone");
    live[conn]->local = std::string(local);
  }
  void paired(ConnId offerer, ConnId answerer, std::string_view offerer_id, std::string_view answerer_id) override {
    CHECK(is_live(offerer) && is_live(answerer), "paired() with a side gone");
    CHECK(offerer != answerer, "paired with itself");
    CHECK(live[offerer]->local == offerer_id && live[answerer]->local == answerer_id, "paired() ids wrong");
  }
  void unpaired(const CallEnded &call) override {
    CHECK(call.reason != nullptr, "unpaired without a reason");
    CHECK(call.left == 0 || live.count(call.left), "unpaired: the side left is not a connection");
  }
  void start_grace(const std::string &id) override {
    for (const auto &g : graces)
      CHECK(g != id, "start_grace twice for one id");
    graces.push_back(id);
  }
  void cancel_grace(const std::string &id) override {
    for (size_t i = 0; i < graces.size(); i++)
      if (graces[i] == id) {
        graces.erase(graces.begin() + static_cast<long>(i));
        return;
      }
    // The plugin forgets a timer that ran out before calling expire(), which
    // then cancels it again: only that case may name an id with no grace.
    CHECK(expiring == id, "cancel_grace for an id with no grace running");
  }
  void resumed(ConnId conn, ConnId partner, std::string_view id) override {
    CHECK(is_live(conn) && is_live(partner), "resumed() with a side gone");
    live[conn]->local = std::string(id);
  }
  std::string new_token() override { return "tok" + std::to_string(++tokens); }
};

struct Options {
  Takeover takeover = Takeover::kReplace;
  bool resume = true;
  size_t max_id = 256;
};

Options parse_options(std::string_view line) {
  Options o;
  for (size_t i = 0; i + 1 < line.size(); i++) {
    if (line[i] != '#')
      continue;
    char c = line[i + 1];
    if (c == 'r')
      o.takeover = Takeover::kRefuse;
    else if (c == 'n')
      o.resume = false;
    else if (c == 'i') {
      size_t n = 0, k = i + 2;
      while (k < line.size() && line[k] >= '0' && line[k] <= '9' && n < 100000)
        n = n * 10 + static_cast<size_t>(line[k++] - '0');
      if (n >= 1 && n <= 4096)
        o.max_id = n;
    }
  }
  return o;
}

const char *reason_for(char c) {
  switch (c) {
  case 't': return "timeout";
  case 's': return "shutdown";
  case 'e': return "server";
  case 'l': return "limit";
  case 'k': return "takeover";
  default: return "client";
  }
}

std::optional<std::string_view> string_at(const duet_msg_t &msg, const char *pointer) {
  const char *out = nullptr;
  size_t len = 0;
  if (duet__message_string(&msg, pointer, &out, &len) != 0)
    return std::nullopt;
  CHECK(out != nullptr, "message_string gave a null string");
  return std::string_view(out, len);
}

// Every invariant that must hold between steps.
void check_state(const PairingState &state, const Recorder &rec, const std::map<ConnId, Conn *> &all) {
  size_t paired_live = 0;
  for (const auto &[id, conn] : all) {
    ConnId p = state.partner_of(id);
    if (!rec.live.count(id)) {
      CHECK(!state.is_registered(id), "a closed connection is still registered");
      CHECK(p == 0, "a closed connection still has a partner");
      continue;
    }
    if (p == 0)
      continue;
    paired_live++;
    CHECK(p != id, "a connection is its own partner");
    CHECK(rec.live.count(p), "the partner of a live connection is gone");
    CHECK(state.partner_of(p) == id, "pairs are not symmetric");
    CHECK(state.is_registered(id) && state.is_registered(p), "a partner is not registered");
  }
  CHECK(paired_live % 2 == 0, "odd number of paired connections");
  for (const auto &g : rec.graces)
    CHECK(state.is_away(g), "a grace runs for an id that is not away");
  CHECK(state.pairs() == paired_live / 2 + rec.graces.size(), "pairs() disagrees with the pairs seen");
  CHECK(state.registered() <= rec.live.size(), "more registrations than connections");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 64 * 1024)
    return 0;
  std::string_view input(reinterpret_cast<const char *>(data), size);
  std::vector<std::string_view> lines;
  for (size_t start = 0; start <= input.size();) {
    size_t nl = input.find('\n', start);
    if (nl == std::string_view::npos)
      nl = input.size();
    lines.push_back(input.substr(start, nl - start));
    start = nl + 1;
  }
  if (lines.size() > 400)
    return 0;

  Options opt;
  if (!lines.empty() && !lines[0].empty() && lines[0][0] == '#')
    opt = parse_options(lines[0]);

  Recorder rec;
  StoreConfig config;
  config.takeover = opt.takeover;
  config.max_id_bytes = opt.max_id;
  LocalStore store(rec, config);
  const PairingState &state = store.state();
  Conn slots[kSlots];
  std::map<ConnId, Conn *> all;  // every connection ever made (ids never reused, as in the core)
  std::vector<std::unique_ptr<Conn>> gone;  // keeps closed Conns for `all`
  ConnId next_id = 1;
  // Known, reported findings can be switched off so fuzzing goes on past
  // them until they are fixed (tests/fuzz/run --allow-known).
  static const bool utf8_strict = std::getenv("DUET_FUZZ_STRICT_UTF8") != nullptr;
  static const bool allow_nul = std::getenv("DUET_FUZZ_ALLOW_NUL") != nullptr;

  std::string last_buf;  // the message the decoder's document belongs to
  duet_msg_t last_msg{};
  bool have_last = false;

  auto connect = [&](int s) {
    if (slots[s].id != 0)
      return;
    slots[s] = Conn{};
    slots[s].id = next_id++;
    rec.live[slots[s].id] = &slots[s];
    all[slots[s].id] = &slots[s];
  };
  // The core tells the plugin once, then the id is dead for good.
  auto disconnect = [&](ConnId id, const char *reason) {
    auto it = rec.live.find(id);
    if (it == rec.live.end())
      return;
    Conn *c = it->second;
    // Nothing may be sent to it from now on, except at shutdown, where the
    // core tells each paired side that its call ended before closing it.
    bool shutdown = std::strcmp(reason, "shutdown") == 0;
    c->closing = !shutdown;
    rec.sent.clear();
    store.closed(id, reason);
    for (const auto &s : rec.sent)
      CHECK(s.to != id || (shutdown && s.json == "{\"close\":1}"), "the closing connection was sent something");
    rec.live.erase(id);
    auto keep = std::make_unique<Conn>(*c);
    all[id] = keep.get();
    gone.push_back(std::move(keep));
    for (auto &slot : slots)
      if (slot.id == id)
        slot = Conn{};
  };
  // Close requests made by the rules are carried out by the core afterwards.
  auto flush_closes = [&]() {
    while (!rec.to_close.empty()) {
      ConnId c = rec.to_close.front();
      rec.to_close.erase(rec.to_close.begin());
      CHECK(!state.is_registered(c), "a connection the rules closed is still registered");
      disconnect(c, "takeover");
    }
  };

  for (size_t li = 0; li < lines.size(); li++) {
    std::string_view line = lines[li];
    if (line.empty() || (li == 0 && line[0] == '#'))
      continue;
    rec.sent.clear();
    char c0 = line[0];
    if (c0 >= '0' && c0 <= '9' && line.size() >= 2) {
      int s = (c0 - '0') % kSlots;
      char op = line[1];
      std::string_view rest = line.substr(2);
      if (op == '+') {
        connect(s);
      } else if (op == '-') {
        if (slots[s].id != 0)
          disconnect(slots[s].id, reason_for(rest.empty() ? 'c' : rest[0]));
      } else if (op == '>') {
        connect(s);
        ConnId from = slots[s].id;
        last_buf.assign(rest.data(), rest.size());
        const char *why = nullptr;
        duet_msg_t msg{};
        have_last = false;
        if (duet__message_decode(last_buf.data(), last_buf.size(), &msg, &why) != 0) {
          CHECK(why != nullptr && *why, "a refused message without a reason");
          continue;
        }
        CHECK(msg.json == last_buf.data() && msg.json_len == last_buf.size(), "msg.json is not the message");
        // JSON has no raw NUL anywhere (strings escape it), so an accepted
        // message with one means the parser stopped early and the rest was
        // ignored, yet msg.json (relayed whole) still carries it.
        if (!allow_nul)
          CHECK(std::memchr(last_buf.data(), 0, last_buf.size()) == nullptr,
                "a message with a raw NUL byte was accepted (bytes after it are ignored, then relayed)");
        CHECK(msg.type != nullptr, "no type");
        std::string_view type(msg.type, msg.type_len);
        CHECK(type != "remote", "remote taken as the type");
        last_msg = msg;
        have_last = true;
        // The plugin's own reading of the message and call on its store.
        Request req = read_request(
            type, [&](const char *pointer) { return string_at(msg, pointer); }, opt.resume);
        if (req.kind == Request::Kind::kOpen) {
          if (utf8_strict) {
            CHECK(valid_utf8(req.local), "decoded local id is not valid UTF-8");
            CHECK(valid_utf8(req.remote), "decoded remote id is not valid UTF-8");
          }
          bool was_registered = state.is_registered(from);
          Outcome o = route(store, from, req, last_buf);
          if (o.ok()) {
            CHECK(state.is_registered(from), "a successful open did not register");
            CHECK(rec.live[from]->local == req.local, "open registered under another id");
          } else {
            CHECK(o.code != nullptr && *o.code, "refusal without a code");
            if (!was_registered)
              CHECK(!state.is_registered(from), "a refused open registered anyway");
          }
          // Every start goes to the two sides of a pair, naming them correctly.
          for (const auto &m : rec.sent) {
            if (m.json.rfind("{\"start\":", 0) == 0) {
              ConnId p = state.partner_of(m.to);
              CHECK(p != 0, "start sent to a connection that is not paired");
              CHECK(m.to == from || p == from, "start sent to someone outside the new pair");
            }
          }
        } else if (req.kind == Request::Kind::kRelay) {
          ConnId partner = state.partner_of(from);
          Outcome o = route(store, from, req, std::string_view(msg.json, msg.json_len));
          if (o.ok()) {
            CHECK(rec.sent.size() == 1, "a relay did not send exactly one message");
            const Sent &m = rec.sent[0];
            CHECK(partner != 0 && m.to == partner, "relayed to someone who is not the sender's partner");
            CHECK(state.partner_of(m.to) == from, "relayed to someone not paired with the sender");
            CHECK(rec.live[m.to]->local == req.remote, "relayed to a connection whose id is not the message's remote");
            CHECK(m.json == last_buf, "the relayed message is not the message sent");
          } else {
            CHECK(rec.sent.empty(), "a refused relay still sent something");
          }
        } else if (req.kind == Request::Kind::kBad) {
          CHECK(!route(store, from, req, last_buf).ok(), "a message lacking a member was taken");
        }
        // Anything sent now went to live connections (checked in send()).
      } else {
        continue;
      }
    } else if (c0 == '!') {
      std::string id(line.substr(1));
      if (rec.graces.empty())
        continue;
      if (id.empty())
        id = rec.graces.front();
      bool pending = false;
      for (const auto &g : rec.graces)
        pending |= g == id;
      if (!pending)
        continue;  // the plugin only expires ids whose timer still runs
      // The plugin forgets the timer before calling expire().
      for (size_t i = 0; i < rec.graces.size(); i++)
        if (rec.graces[i] == id) {
          rec.graces.erase(rec.graces.begin() + static_cast<long>(i));
          break;
        }
      rec.expiring = id;
      store.expire(id);
      rec.expiring.clear();
      CHECK(!state.is_away(id), "an expired id is still away");
    } else if (c0 == '?') {
      if (!have_last)
        continue;
      std::string pointer(line.substr(1));
      const char *out = nullptr;
      size_t len = 0;
      int r = duet__message_string(&last_msg, pointer.c_str(), &out, &len);
      CHECK(r == 0 || r == DUET_EINVAL || r == DUET_ENOENT, "unexpected message_string result");
      if (r == 0) {
        CHECK(out != nullptr, "null string");
        volatile char sink = 0;
        for (size_t k = 0; k < len; k++)
          sink = static_cast<char>(sink ^ out[k]);  // every byte readable (ASan)
        if (utf8_strict)
          CHECK(valid_utf8(std::string_view(out, len)), "decoded string is not valid UTF-8");
      }
      continue;
    }
    flush_closes();
    check_state(state, rec, all);
  }
  // The end: everyone leaves, as at shutdown.
  for (auto &slot : slots)
    if (slot.id != 0)
      disconnect(slot.id, "shutdown");
  flush_closes();
  check_state(state, rec, all);
  CHECK(state.registered() == 0, "registrations left after everyone left");
  while (!rec.graces.empty()) {
    std::string id = rec.graces.front();
    rec.graces.erase(rec.graces.begin());
    rec.expiring = id;
    store.expire(id);
    rec.expiring.clear();
  }
  CHECK(state.pairs() == 0, "pairs left after everyone left and every grace ran out");
  return 0;
}
