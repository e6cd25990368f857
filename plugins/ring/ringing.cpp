#include "ringing.hpp"

#include <algorithm>
#include <utility>

#include "ids.hpp"
#include "wire.hpp"

namespace duet::ring {

namespace {

const Outcome kRingUnknownHere = {"ring-unknown",
                                  "This ring is not ringing on this device's line (it may have ended)."};

// Pairing ids for an accepted ring: 128 random bits, so nobody can take
// either side's place by guessing (pairing's takeover would let them).
std::string new_call_id() { return "ring-" + random_hex(16); }
bool is_call_id(const std::string &id) { return id.rfind("ring-", 0) == 0; }

// Lets each side's open pass the auth plugin without a call token: the
// ring link and the device's secret already stood in for one.
void admit(const duet::Host &host, const std::string &local, const std::string &remote) {
  host.emit("auth.admit", 0, object([&](Writer &w) {
              put(w, "local", local);
              put(w, "remote", remote);
            }));
}

std::string text_of(const rapidjson::Document &event, const char *name) {
  return string_member(event, name).value_or(std::string());
}

bool accepted(const rapidjson::Document &event) {
  auto it = event.FindMember("accept");
  return it != event.MemberEnd() && it->value.IsBool() && it->value.GetBool();
}

std::string connect_message(const std::string &ring_id, const std::string &local, const std::string &remote) {
  return message("ring-connect", [&](Writer &w) {
    put(w, "ring", ring_id);
    put(w, "local", local);
    put(w, "remote", remote);
  });
}

}  // namespace

void Ringing::ring(ConnId caller, const std::string &line_id, const std::string &name, const std::string &address,
                   const Reply &reply) {
  if (callers_.count(caller))
    return reply({"already-ringing", "This connection is already ringing a line: cancel that ring first."});
  // Before the lookup: guessing line ids costs the guesser its own limit.
  if (!per_address_.allow(address, now_ms())) {
    ctx_.host.metric_add(ctx_.metrics.limited_caller, 1);
    return reply({"ring-rate-limited", "Too many rings from your address: wait a minute, then try again."});
  }
  ctx_.store.line_by_id(line_id, [this, caller, name, reply](Answer<std::optional<Line>> found) {
    if (!found.ok())
      return reply(found.failure);
    if (!found.value)
      return reply({"line-unknown", "No line has this ring link: it may have been replaced or removed."});
    const Line line = *found.value;
    if (!per_line_.allow(std::to_string(line.key), now_ms())) {
      ctx_.host.metric_add(ctx_.metrics.limited_line, 1);
      return reply({"line-rate-limited", "This line has been rung too often just now: wait a minute, then try again."});
    }
    const std::string ring_id = random_hex(8);
    ctx_.bus.claim(line.key, ring_id, ring_time_ + kMarkSlack,
                   [this, caller, name, reply, line, ring_id](Answer<bool> claimed) {
                     if (!claimed.ok())
                       return reply(claimed.failure);
                     if (!claimed.value) {
                       ctx_.host.metric_add(ctx_.metrics.busy, 1);
                       return reply({"busy", "The line is busy: it is ringing or in a call. Try again later."});
                     }
                     if (!ctx_.live(caller)) {  // hung up while the line was looked up
                       ctx_.bus.release(line.key, ring_id);
                       return reply({});
                     }
                     start(caller, line, ring_id, name);
                     reply({});
                   });
  });
}

void Ringing::start(ConnId caller, const Line &line, const std::string &ring_id, const std::string &name) {
  // The timer first: if it cannot start, nothing is half-recorded.
  duet::Timer timer = ctx_.host.start_timer(ring_time_, {}, [this, ring_id] { no_answer(ring_id); });
  Ring &ring = rings_[ring_id];
  ring.id = ring_id;
  ring.line = line.key;
  ring.line_name = line.name;
  ring.caller = caller;
  ring.caller_name = name;
  ring.at_ms = now_ms();
  ring.timer = std::move(timer);
  callers_[caller] = ring_id;
  ctx_.host.metric_add(ctx_.metrics.rings, 1);
  ctx_.host.send(caller, message("ringing", [&](Writer &w) {
                   put(w, "ring", ring_id);
                   put(w, "name", line.name);
                 }));
  const std::int64_t at = ring.at_ms;
  ctx_.bus.publish(object([&](Writer &w) {
    put(w, "ev", "incoming");
    put(w, "ring", ring_id);
    put(w, "line", line.key);
    put(w, "owner", ctx_.bus.node());
    put(w, "caller", name);
    put(w, "at", at);
  }));
  if (!pushes_)
    return;
  // Pushes go to the devices with no page open on any node.
  ctx_.bus.open_devices(line.key, [this, line, ring_id, name, at](const Answer<std::vector<std::string>> &open) {
    if (!open.ok() || !rings_.count(ring_id))
      return;  // the open pages still ring
    pushes_->ring(line, ring_id, name, at, ring_time_, open.value, [this, ring_id](std::vector<std::string> pushed) {
      auto it = rings_.find(ring_id);
      if (it != rings_.end())
        it->second.pushed = std::move(pushed);
    });
  });
}

void Ringing::ring_device(ConnId device, const std::string &ring_id, const Shown &shown) {
  ctx_.host.send(device, message("incoming", [&](Writer &w) {
                   put(w, "ring", ring_id);
                   put(w, "caller", shown.caller_name);
                   put(w, "at", shown.at_ms);
                 }));
}

void Ringing::attached(ConnId device, LineKey line) {
  auto it = shown_on_.find(line);
  if (it != shown_on_.end())
    ring_device(device, it->second, shown_.at(it->second));
}

void Ringing::cancel(ConnId caller, const std::string &ring_id, const Reply &reply) {
  auto it = rings_.find(ring_id);
  if (it == rings_.end() || it->second.caller != caller)
    return reply({"ring-unknown", "No ring of yours with this id is ringing (it may have ended)."});
  ctx_.host.metric_add(ctx_.metrics.cancelled, 1);
  end(ring_id, "cancelled", "cancelled");
  reply({});
}

void Ringing::accept(ConnId device, const std::string &ring_id, const Reply &reply) {
  answer(device, ring_id, true, reply);
}

void Ringing::decline(ConnId device, const std::string &ring_id, const Reply &reply) {
  answer(device, ring_id, false, reply);
}

void Ringing::answer(ConnId device, const std::string &ring_id, bool accepted, const Reply &reply) {
  auto it = shown_.find(ring_id);
  const Attachments::Entry *entry = ctx_.attached.of(device);
  if (it == shown_.end() || !entry || entry->line != it->second.line)
    return reply(kRingUnknownHere);
  const std::string owner = it->second.owner;
  ctx_.bus.publish(object([&](Writer &w) {
    put(w, "ev", "answer");
    put(w, "ring", ring_id);
    put(w, "to", owner);
    put(w, "node", ctx_.bus.node());
    put(w, "conn", static_cast<std::int64_t>(device));
    put(w, "device", entry->device);
    put_bool(w, "accept", accepted);
  }));
  reply({});
}

// On the owner: the first answer wins; later ones find the ring gone.
void Ringing::answered(const std::string &ring_id, bool accepted, const Answerer &by) {
  if (!rings_.count(ring_id))
    return;
  if (accepted) {
    ctx_.host.metric_add(ctx_.metrics.accepted, 1);
    connect(ring_id, by);
  } else {
    ctx_.host.metric_add(ctx_.metrics.declined, 1);
    Answerer pushless = by;  // the decliner hears its ring-stop too, but no push
    pushless.conn = 0;
    end(ring_id, "declined", "declined", pushless);
  }
}

// Both sides get fresh pairing ids and open the call like any other.
void Ringing::connect(const std::string &ring_id, const Answerer &by) {
  const Ring &ring = rings_.at(ring_id);
  const LineKey line = ring.line;
  const ConnId caller = ring.caller;
  const std::string caller_id = new_call_id(), device_id = new_call_id();
  duet::Timer timer = ctx_.host.start_timer(kConnectWindow, {}, [this, line] { end_call(line); });
  end(ring_id, "answered-elsewhere", nullptr, by, true);
  Call &call = calls_[line];
  call.ring = ring_id;
  call.ids[0] = caller_id;
  call.ids[1] = device_id;
  call.timer = std::move(timer);
  call_ids_[caller_id] = line;
  call_ids_[device_id] = line;
  ctx_.bus.extend(line, ring_id, kConnectWindow + kMarkSlack);
  admit(ctx_.host, caller_id, device_id);
  admit(ctx_.host, device_id, caller_id);
  ctx_.host.send(caller, connect_message(ring_id, caller_id, device_id));
  ctx_.bus.publish(object([&](Writer &w) {
    put(w, "ev", "connect");
    put(w, "ring", ring_id);
    put(w, "node", by.node);
    put(w, "conn", static_cast<std::int64_t>(by.conn));
    put(w, "local", device_id);
    put(w, "remote", caller_id);
  }));
}

void Ringing::no_answer(const std::string &ring_id) {
  auto it = rings_.find(ring_id);
  if (it == rings_.end())
    return;
  ctx_.host.metric_add(ctx_.metrics.missed, 1);
  const LineKey line = it->second.line;
  const std::string caller = it->second.caller_name;
  const std::int64_t at = it->second.at_ms;
  // Taken (left empty): the end below pushes no ring-stop, the missed call replaces it.
  const std::vector<std::string> pushed = std::exchange(it->second.pushed, {});
  // Stored before anyone hears of it: a device that asks next sees it.
  ctx_.store.add_missed(line, caller, at, [this](Answer<bool> stored) {
    if (!stored.ok())  // the line may be gone; the devices are told
      ctx_.host.log(DUET_LOG_WARN, "a missed call was not stored");
  });
  end(ring_id, "missed", "no-answer");
  ctx_.bus.publish(object([&](Writer &w) {
    put(w, "ev", "missed");
    put(w, "ring", ring_id);
    put(w, "line", line);
    put(w, "caller", caller);
    put(w, "at", at);
  }));
  if (pushes_)
    pushes_->missed(line, pushed, ring_id, caller, at);
}

void Ringing::end(const std::string &ring_id, const char *device_reason, const char *caller_reason, const Answerer &by,
                  bool keep_mark) {
  auto it = rings_.find(ring_id);
  if (it == rings_.end())
    return;
  // Out of the maps first: what is sent below may end up back here.
  Ring ring = std::move(it->second);
  rings_.erase(it);
  callers_.erase(ring.caller);
  ctx_.bus.publish(object([&](Writer &w) {
    put(w, "ev", "stop");
    put(w, "ring", ring_id);
    put(w, "line", ring.line);
    put(w, "reason", device_reason);
    put(w, "node", by.node);
    put(w, "conn", static_cast<std::int64_t>(by.conn));  // 0: every device hears it
  }));
  // For the other plugins (webhooks: call.missed, call.declined), on the
  // ring's own node only.
  ctx_.host.emit("ring.ended", ring.caller, object([&](Writer &w) {
                   put(w, "ring", ring_id);
                   put(w, "line", ring.line_name);
                   put(w, "caller", ring.caller_name);
                   put(w, "reason", device_reason);
                   put(w, "rang_ms", now_ms() - ring.at_ms);
                 }));
  if (caller_reason)
    ctx_.host.send(ring.caller, message("ring-ended", [&](Writer &w) {
                     put(w, "ring", ring_id);
                     put(w, "reason", caller_reason);
                   }));
  if (pushes_ && !ring.pushed.empty()) {
    // The device that answered knows: a push would tell it "elsewhere".
    std::vector<std::string> others = ring.pushed;
    others.erase(std::remove(others.begin(), others.end(), by.device), others.end());
    pushes_->stop(ring.line, others, ring_id, device_reason);
  }
  if (!keep_mark)
    ctx_.bus.release(ring.line, ring_id);
}

void Ringing::device_removed(ConnId device, LineKey line) {
  auto it = shown_on_.find(line);
  if (it == shown_on_.end())
    return;
  ctx_.host.send(device, message("ring-stop", [&](Writer &w) {
                   put(w, "ring", it->second);
                   put(w, "reason", "removed");
                 }));
}

void Ringing::closed(ConnId conn) {
  auto it = callers_.find(conn);
  if (it == callers_.end())
    return;
  ctx_.host.metric_add(ctx_.metrics.cancelled, 1);
  end(std::string(it->second), "cancelled", nullptr);
}

void Ringing::line_gone(LineKey line) {
  ctx_.bus.publish(object([&](Writer &w) {
    put(w, "ev", "gone");
    put(w, "line", line);
  }));
}

void Ringing::paired(const std::string &a, const std::string &b) { call_event("paired", a, b); }
void Ringing::unpaired(const std::string &a, const std::string &b) { call_event("unpaired", a, b); }

// The call's owner may be another node: it hears what pairing said here.
void Ringing::call_event(const char *what, const std::string &a, const std::string &b) {
  if (!is_call_id(a) && !is_call_id(b))
    return;
  ctx_.bus.publish(object([&](Writer &w) {
    put(w, "ev", what);
    put(w, "a", a);
    put(w, "b", b);
  }));
}

void Ringing::end_call(LineKey line) {
  auto it = calls_.find(line);
  if (it == calls_.end())
    return;
  for (const std::string &id : it->second.ids)
    call_ids_.erase(id);
  ctx_.bus.release(line, it->second.ring);
  calls_.erase(it);  // may be the running timer's own call: the Timer allows it
}

bool Ringing::on_event(const std::string &kind, const rapidjson::Document &event) {
  const std::string &me = ctx_.bus.node();
  if (kind == "incoming") {
    on_incoming(event);
  } else if (kind == "stop") {
    on_stop(event);
  } else if (kind == "missed") {
    on_missed(event);
  } else if (kind == "answer") {
    if (text_of(event, "to") == me)
      answered(text_of(event, "ring"), accepted(event),
               {text_of(event, "node"), static_cast<ConnId>(int64_member(event, "conn").value_or(0)),
                text_of(event, "device")});
  } else if (kind == "connect") {
    on_connect(event);
  } else if (kind == "gone") {
    const LineKey line = int64_member(event, "line").value_or(0);
    for (auto it = rings_.begin(); it != rings_.end(); ++it)
      if (it->second.line == line) {
        end(std::string(it->first), "declined", "declined");
        break;
      }
    end_call(line);
  } else if (kind == "paired" || kind == "unpaired") {
    auto a = call_ids_.find(text_of(event, "a")), b = call_ids_.find(text_of(event, "b"));
    if (kind == "unpaired") {
      if (a != call_ids_.end() || b != call_ids_.end())
        end_call(a != call_ids_.end() ? a->second : b->second);
    } else if (a != call_ids_.end() && b != call_ids_.end() && a->second == b->second) {
      // The call is on: busy until it ends; the mark is kept alive meanwhile.
      const LineKey line = a->second;
      Call &call = calls_.at(line);
      const std::string holder = call.ring;
      ctx_.bus.extend(line, holder, 3 * kMarkSlack);
      call.timer = ctx_.host.start_timer(kMarkSlack, kMarkSlack,
                                         [this, line, holder] { ctx_.bus.extend(line, holder, 3 * kMarkSlack); });
    }
  } else {
    return false;
  }
  return true;
}

void Ringing::on_incoming(const rapidjson::Document &event) {
  const std::string ring_id = text_of(event, "ring");
  const LineKey line = int64_member(event, "line").value_or(0);
  if (ring_id.empty() || shown_.count(ring_id))
    return;
  // A line shows one ring: one whose owner went silent gives way.
  if (auto it = shown_on_.find(line); it != shown_on_.end())
    forget_shown(std::string(it->second));
  duet::Timer timer = ctx_.host.start_timer(ring_time_ + kMarkSlack / 2, {}, [this, ring_id, line] {
    // The owner never said how it ended (its node is gone): it ends here.
    const std::string stop = message("ring-stop", [&](Writer &w) {
      put(w, "ring", ring_id);
      put(w, "reason", "cancelled");
    });
    forget_shown(ring_id);
    for (ConnId device : ctx_.attached.on_line(line))
      ctx_.host.send(device, stop);
  });
  Shown &shown = shown_[ring_id];
  shown.line = line;
  shown.owner = text_of(event, "owner");
  shown.caller_name = text_of(event, "caller");
  shown.at_ms = int64_member(event, "at").value_or(0);
  shown.timer = std::move(timer);
  shown_on_[line] = ring_id;
  for (ConnId device : ctx_.attached.on_line(line))
    ring_device(device, ring_id, shown);
}

void Ringing::forget_shown(const std::string &ring_id) {
  auto it = shown_.find(ring_id);
  if (it == shown_.end())
    return;
  auto on = shown_on_.find(it->second.line);
  if (on != shown_on_.end() && on->second == ring_id)
    shown_on_.erase(on);
  shown_.erase(it);  // may be the running timer's own: the Timer allows it
}

void Ringing::on_stop(const rapidjson::Document &event) {
  const std::string ring_id = text_of(event, "ring");
  const LineKey line = int64_member(event, "line").value_or(0);
  const bool here = text_of(event, "node") == ctx_.bus.node();
  const ConnId except = here ? static_cast<ConnId>(int64_member(event, "conn").value_or(0)) : 0;
  forget_shown(ring_id);
  const std::string stop = message("ring-stop", [&](Writer &w) {
    put(w, "ring", ring_id);
    put(w, "reason", text_of(event, "reason"));
  });
  for (ConnId device : ctx_.attached.on_line(line))
    if (device != except)
      ctx_.host.send(device, stop);
}

void Ringing::on_missed(const rapidjson::Document &event) {
  const std::string missed = message("missed", [&](Writer &w) {
    put(w, "ring", text_of(event, "ring"));
    put(w, "caller", text_of(event, "caller"));
    put(w, "at", int64_member(event, "at").value_or(0));
  });
  for (ConnId device : ctx_.attached.on_line(int64_member(event, "line").value_or(0)))
    ctx_.host.send(device, missed);
}

void Ringing::on_connect(const rapidjson::Document &event) {
  if (text_of(event, "node") != ctx_.bus.node())
    return;
  const std::string local = text_of(event, "local"), remote = text_of(event, "remote");
  admit(ctx_.host, local, remote);  // this node opens the device's side
  admit(ctx_.host, remote, local);
  ctx_.host.send(static_cast<ConnId>(int64_member(event, "conn").value_or(0)),
                 connect_message(text_of(event, "ring"), local, remote));
}

void Ringing::prune(std::int64_t now) {
  per_address_.prune(now);
  per_line_.prune(now);
}

}  // namespace duet::ring
