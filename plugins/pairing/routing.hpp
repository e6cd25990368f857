// Which messages pairing takes, what each must hold, and which store call
// it becomes: the one reading of open, sdp and ice, shared by the plugin and
// tests/fuzz/fuzz_messages.cpp (README.md, "Protocol").
#pragma once

#include <functional>
#include <optional>
#include <string_view>

#include "store.hpp"

namespace duet::pairing {

// A string member of the message by JSON Pointer, or nullopt.
using StringAt = std::function<std::optional<std::string_view>(const char *pointer)>;

struct Request {
  enum class Kind {
    kNotOurs,  // not a pairing message: the next plugin may take it
    kBad,      // ours, but lacking a member: error is for the sender
    kOpen,     // local, remote, resume
    kRelay,    // sdp or ice (relay) for remote
  };
  Kind kind = Kind::kNotOurs;
  Outcome error;
  std::string_view local, remote;
  std::optional<std::string_view> resume;
  PairingState::Kind relay = PairingState::Kind::kSdp;
};

// type: the message's type. resume: whether open's "resume" is read at all
// (resume-grace above 0). The views live as long as string_at's answers.
Request read_request(std::string_view type, const StringAt &string_at, bool resume);

// The request from conn, run on store: the outcome for the sender. json is
// the message as received, relayed whole.
Outcome route(PairingStore &store, ConnId conn, const Request &request, std::string_view json);

}  // namespace duet::pairing
