#include "effects.hpp"

#include <memory>

#include <hiredis/hiredis.h>

#include "schema.hpp"

namespace duet::cluster {

using pairing::ConnId;

void Graces::start(const std::string &id, const std::string &token) {
  timers_[id] = host_.start_timer(grace_, {}, [this, id, token] {
    timers_.erase(id);
    over_(id, token);
  });
}

void Effects::hold() {
  holding_ = true;
  held_ = {};
}

Effects::Held Effects::release() {
  holding_ = false;
  return std::exchange(held_, {});
}

void Effects::effect(std::uint32_t node, std::function<void()> here, std::string frame) {
  if (node == map_.node()) {
    if (holding_)
      held_.here.push_back(std::move(here));
    else
      here();
  } else if (holding_) {
    held_.frames.emplace_back(node, std::move(frame));
  } else {
    publish(node, frame, 0);
  }
}

void Effects::publish(std::uint32_t node, const std::string &frame, ConnId sender) {
  auto unreachable = [this, sender] {
    if (sender && !stopping_)
      local_.send_error(sender, "cluster-unavailable",
                        "The other person is on another server that cannot be reached now; try again shortly.");
  };
  if (!membership_.healthy() || !membership_.commands().command(
                                    {"PUBLISH", schema::node_channel(node), frame}, [unreachable](const redisReply *r) {
                                      if (!r || (r->type == REDIS_REPLY_INTEGER && r->integer == 0))
                                        unreachable();
                                    })) {
    unreachable();
    return;
  }
  host_.metric_add(sent_meter_, 1);
}

// No copy, no allocation for a partner here.
void Effects::relay(ConnId to, std::string_view json, ConnId sender) {
  if (map_.is_here(to))
    local_.send(to, json);
  else if (Where w = map_.where(to))
    publish(w.node, frame_send(w.conn, json), sender);
}

void Effects::deliver(const Frame &f) {
  switch (f.kind) {
  case 'S':
    local_.send(f.conn, f.a);
    break;
  case 'E': {
    std::string code(f.a), message(f.b);
    local_.send_error(f.conn, code.c_str(), message.c_str());
    break;
  }
  case 'X': {
    std::string reason(f.a);
    local_.close(f.conn, f.code, reason.c_str());
    break;
  }
  default:
    break;
  }
}

void Effects::send(ConnId to, std::string_view json) {
  Where w = map_.where(to);
  effect(
      w.node, [this, to, text = std::string(json)] { local_.send(to, text); }, frame_send(w.conn, json));
}

void Effects::send_error(ConnId to, const char *code, const char *message) {
  Where w = map_.where(to);
  effect(
      w.node, [this, to, code, message] { local_.send_error(to, code, message); }, frame_error(w.conn, code, message));
}

void Effects::close(ConnId conn, int ws_code, const char *reason) {
  Where w = map_.where(conn);
  effect(
      w.node, [this, conn, ws_code, reason] { local_.close(conn, ws_code, reason); },
      frame_close(w.conn, ws_code, reason));
}

void Effects::opened(ConnId conn, std::string_view local, std::string_view remote) {
  on_this_node([this, conn, l = std::string(local), r = std::string(remote)] { local_.opened(conn, l, r); });
}

void Effects::paired(ConnId offerer, ConnId answerer, std::string_view offerer_id, std::string_view answerer_id) {
  on_this_node([this, offerer, answerer = here_or_0(answerer), o = std::string(offerer_id),
                a = std::string(answerer_id)] { local_.paired(offerer, answerer, o, a); });
}

void Effects::unpaired(const pairing::CallEnded &call) {
  struct Owned {
    pairing::CallEnded call;
    std::string gone_id, left_id;
  };
  auto owned = std::make_shared<Owned>(Owned{call, std::string(call.gone_id), std::string(call.left_id)});
  owned->call.gone = here_or_0(call.gone);
  owned->call.left = here_or_0(call.left);
  on_this_node([this, owned] {
    pairing::CallEnded c = owned->call;
    c.gone_id = owned->gone_id;
    c.left_id = owned->left_id;
    local_.unpaired(c);
  });
}

void Effects::resumed(ConnId conn, ConnId partner, std::string_view id) {
  on_this_node([this, conn, partner = here_or_0(partner), i = std::string(id)] { local_.resumed(conn, partner, i); });
}

// The partner's node keeps the grace timer (Graces).
void Effects::start_grace(const std::string &id) {
  auto r = state_.record(id);
  if (!r || r->conn != 0)
    return;
  Where w = map_.where(r->waiting);
  effect(
      w.node, [this, id, token = r->entry.token] { graces_.start(id, token); }, frame_grace(r->entry.token, id));
}

void Effects::cancel_grace(const std::string &id) {
  on_this_node([this, id] { graces_.cancel(id); });
}

}  // namespace duet::cluster
