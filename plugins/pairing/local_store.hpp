// The store of one duetd alone: the rules on this process's places, their
// effects straight to the plugin. tests/fuzz/fuzz_messages.cpp drives it too.
#pragma once

#include "store.hpp"

namespace duet::pairing {

class LocalStore final : public PairingStore {
public:
  LocalStore(Actions &actions, const StoreConfig &config) : state_(actions, config.takeover, config.max_id_bytes) {}

  Outcome open(ConnId conn, std::string_view local, std::string_view remote,
               std::optional<std::string_view> resume) override {
    return state_.open(conn, local, remote, resume);
  }
  Outcome relay(ConnId conn, PairingState::Kind kind, std::string_view remote, std::string_view json) override {
    return state_.relay(conn, kind, remote, json);
  }
  void closed(ConnId conn, const char *reason) override { state_.closed(conn, reason); }
  void expire(const std::string &id) override { state_.expire(id); }
  std::size_t pairs() const override { return state_.pairs(); }
  bool pairs_cheap() const override { return true; }

  const PairingState &state() const { return state_; }

private:
  PairingState state_;
};

}  // namespace duet::pairing
