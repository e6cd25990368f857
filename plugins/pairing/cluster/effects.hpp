// A rule's effects in a cluster (pairing::Actions). While a decision is
// held (hold() … release()), effects on this node wait for its commit and
// frames for other nodes' connections ride in its transaction; otherwise
// (a relay, a rule run without Redis) they happen at once. Frames other
// nodes send for this node's connections are delivered here too.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../store.hpp"
#include "codec.hpp"
#include "conn_map.hpp"
#include "membership.hpp"

namespace duet::cluster {

// The resume grace timers this node runs: for ids whose partner is here
// (the one to tell, and it lives on when the other node is dead).
class Graces {
public:
  // over(id, token) when a grace runs out.
  using Over = std::function<void(const std::string &id, const std::string &token)>;
  Graces(const duet::Host &host, std::chrono::milliseconds grace, Over over)
      : host_(host), grace_(grace), over_(std::move(over)) {}
  void start(const std::string &id, const std::string &token);
  void cancel(const std::string &id) { timers_.erase(id); }

private:
  const duet::Host &host_;
  std::chrono::milliseconds grace_;
  Over over_;
  std::unordered_map<std::string, duet::Timer> timers_;
};

class Effects final : public pairing::Actions {
public:
  // What a held decision produced: for after its commit, and for its transaction.
  struct Held {
    std::vector<std::function<void()>> here;
    std::vector<std::pair<std::uint32_t, std::string>> frames;
  };

  // state: the node's copy the rules run on (read, for a grace's token).
  Effects(const duet::Host &host, Membership &membership, const ConnMap &map, const PairingState &state,
          pairing::LocalActions &local, Graces &graces, std::int64_t sent_meter)
      : host_(host), membership_(membership), map_(map), state_(state), local_(local), graces_(graces),
        sent_meter_(sent_meter) {}

  void hold();
  Held release();
  // Replies arriving from now on change nothing.
  void stop() { stopping_ = true; }

  // fn runs on this node after the held decision lands (at once outside one).
  void on_this_node(std::function<void()> fn) { effect(map_.node(), std::move(fn), {}); }
  // json, whole, to the connection to; sender hears when to's node cannot
  // be reached.
  void relay(pairing::ConnId to, std::string_view json, pairing::ConnId sender);
  // A frame (S, E or X) for a connection on this node.
  void deliver(const Frame &frame);

  void send(pairing::ConnId to, std::string_view json) override;
  void send_error(pairing::ConnId to, const char *code, const char *message) override;
  void close(pairing::ConnId conn, int ws_code, const char *reason) override;
  void opened(pairing::ConnId conn, std::string_view local, std::string_view remote) override;
  void paired(pairing::ConnId offerer, pairing::ConnId answerer, std::string_view offerer_id,
              std::string_view answerer_id) override;
  void unpaired(const pairing::CallEnded &call) override;
  void start_grace(const std::string &id) override;
  void cancel_grace(const std::string &id) override;
  void resumed(pairing::ConnId conn, pairing::ConnId partner, std::string_view id) override;
  std::string new_token() override { return local_.new_token(); }

private:
  void effect(std::uint32_t node, std::function<void()> here, std::string frame);
  void publish(std::uint32_t node, const std::string &frame, pairing::ConnId sender);
  pairing::ConnId here_or_0(pairing::ConnId c) const { return map_.is_here(c) ? c : 0; }

  const duet::Host &host_;
  Membership &membership_;
  const ConnMap &map_;
  const PairingState &state_;
  pairing::LocalActions &local_;
  Graces &graces_;
  std::int64_t sent_meter_;
  bool holding_ = false;
  bool stopping_ = false;
  Held held_;
};

}  // namespace duet::cluster
