// What duetd's plugins report (host events) as the webhooks' events: the
// Standard Webhooks body {"type":…,"timestamp":…,"data":{…}} with ids as
// they are, never SDP, ICE or addresses. Plain functions, tested alone.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace duet::webhooks {

// The webhook body for the host event name (with its JSON), or nullopt for
// an event no webhook tells of. node names this duetd in the cluster;
// now_ms (Unix milliseconds) becomes the body's timestamp.
//   pairing.paired   -> call.started
//   pairing.unpaired -> call.ended
//   ring.ended       -> call.missed (no-answer, cancelled) or call.declined
std::optional<std::string> webhook_body(std::string_view name, std::string_view json, std::string_view node,
                                        std::int64_t now_ms);

// How a call ended, in the webhook's words, from the pairing plugin's reason.
const char *how_call_ended(std::string_view pairing_reason);

// RFC 3339 in UTC with milliseconds: "2026-12-07T14:00:00.123Z".
std::string rfc3339_ms(std::int64_t unix_ms);

}  // namespace duet::webhooks
