// What the cluster writes to Redis and sends between nodes: an id's place
// as JSON (the record) and the frames of a node's channel. Pure functions,
// tested alone (tests/unit/test_cluster_codec.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace duet::cluster {

// A connection anywhere in the cluster: the node it is on and its id there.
struct Where {
  std::uint32_t node = 0;
  std::uint64_t conn = 0;  // 0: none
  explicit operator bool() const { return conn != 0; }
  bool operator==(const Where &o) const { return node == o.node && conn == o.conn; }
  bool operator<(const Where &o) const { return node != o.node ? node < o.node : conn < o.conn; }
};

// PairingState::Record with connections named cluster-wide.
struct Place {
  Where conn;  // none: away
  std::string local, remote;
  Where partner;
  std::string away_partner;
  bool can_resume = false, offerer = false;
  std::string token;
  std::uint64_t paired_unix_ms = 0;
  std::uint64_t sdp = 0, ice = 0;
  Where waiting;       // away: the partner that waits
  std::string reason;  // away: why its connection went
};

// A key's value: a version that only grows (a freed id keeps it in a short
// tombstone) and the place, if the id is taken.
struct Stored {
  std::uint64_t version = 0;
  std::optional<Place> place;
};

std::string encode(const Stored &stored);
// nullopt for a value that is not a record (then the id counts as free).
std::optional<Stored> decode(std::string_view json);
// The record without its version, to see whether a rule changed it.
std::string encode_place(const std::optional<Place> &place);

// Frames on a node's channel: one letter, a header line, then the body.
//   S conn\n json           deliver json to conn
//   E conn codelen\n code message   send an error to conn
//   X conn ws_code\n reason close conn (a takeover)
//   U idlen\n id record     a place this node caches changed
//   G tokenlen\n token id   wait for id to resume (this node holds its partner)
struct Frame {
  char kind = 0;
  std::uint64_t conn = 0;
  int code = 0;
  std::string_view a, b;  // the body's parts, by kind (see above)
};
std::string frame_send(std::uint64_t conn, std::string_view json);
std::string frame_error(std::uint64_t conn, std::string_view code, std::string_view message);
std::string frame_close(std::uint64_t conn, int ws_code, std::string_view reason);
std::string frame_update(std::string_view id, std::string_view record);
std::string frame_grace(std::string_view token, std::string_view id);
// nullopt for a malformed frame; views point into text.
std::optional<Frame> parse_frame(std::string_view text);

}  // namespace duet::cluster
