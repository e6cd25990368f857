#include "routing.hpp"

namespace duet::pairing {

Request read_request(std::string_view type, const StringAt &string_at, bool resume) {
  Request r;
  if (type == "open") {
    auto local = string_at("/open/local");
    auto remote = string_at("/open/remote");
    r.resume = resume ? string_at("/open/resume") : std::nullopt;
    if (!local || !remote) {
      r.kind = Request::Kind::kBad;
      r.error = {"bad-request", R"(open needs {"open":{"local":"your id","remote":"their id"}} with strings.)"};
      return r;
    }
    r.kind = Request::Kind::kOpen;
    r.local = *local;
    r.remote = *remote;
  } else if (type == "sdp" || type == "ice") {
    auto remote = string_at("/remote");
    if (!remote) {
      r.kind = Request::Kind::kBad;
      r.error = {"bad-request", "sdp and ice messages need a string member \"remote\"."};
      return r;
    }
    r.kind = Request::Kind::kRelay;
    r.remote = *remote;
    r.relay = type == "sdp" ? PairingState::Kind::kSdp : PairingState::Kind::kIce;
  }
  return r;
}

Outcome route(PairingStore &store, ConnId conn, const Request &request, std::string_view json) {
  switch (request.kind) {
  case Request::Kind::kOpen:
    return store.open(conn, request.local, request.remote, request.resume);
  case Request::Kind::kRelay:
    return store.relay(conn, request.relay, request.remote, json);
  case Request::Kind::kBad:
    return request.error;
  case Request::Kind::kNotOurs:
    break;
  }
  return {};
}

}  // namespace duet::pairing
