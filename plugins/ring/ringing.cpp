#include "ringing.hpp"

#include <algorithm>
#include <utility>

#include "ids.hpp"
#include "wire.hpp"

namespace duet::ring {

namespace {

// Pairing ids for an accepted ring: 128 random bits, so nobody can take
// either side's place by guessing (pairing's takeover would let them).
std::string new_call_id() { return "ring-" + random_hex(16); }

// Lets each side's open pass the auth plugin without a call token: the
// ring link and the device's secret already stood in for one.
void admit(const duet::Host &host, const std::string &local, const std::string &remote) {
  host.emit("auth.admit", 0, object([&](Writer &w) {
              put(w, "local", local);
              put(w, "remote", remote);
            }));
}

}  // namespace

Outcome Ringing::ring(ConnId caller, const std::string &line_id, const std::string &name, const std::string &address) {
  const std::int64_t now = now_ms();
  if (callers_.count(caller))
    return {"already-ringing", "This connection is already ringing a line: cancel that ring first."};
  // Before the lookup: guessing line ids costs the guesser its own limit.
  if (!per_address_.allow(address, now)) {
    ctx_.host.metric_add(ctx_.metrics.limited_caller, 1);
    return {"ring-rate-limited", "Too many rings from your address: wait a minute, then try again."};
  }
  const std::optional<Line> line = ctx_.store.line_by_id(line_id);
  if (!line)
    return {"line-unknown", "No line has this ring link: it may have been replaced or removed."};
  if (!per_line_.allow(std::to_string(line->key), now)) {
    ctx_.host.metric_add(ctx_.metrics.limited_line, 1);
    return {"line-rate-limited", "This line has been rung too often just now: wait a minute, then try again."};
  }
  if (rings_.count(line->key) || calls_.count(line->key)) {
    ctx_.host.metric_add(ctx_.metrics.busy, 1);
    return {"busy", "The line is busy: it is ringing or in a call. Try again later."};
  }
  start(caller, *line, name);
  return {};
}

void Ringing::start(ConnId caller, const Line &line, const std::string &name) {
  // The timer first: if it cannot start, nothing is half-recorded.
  const std::string id = random_hex(8);
  duet::Timer timer = ctx_.host.start_timer(ring_time_, {}, [this, id] { no_answer(id); });
  Ring &ring = rings_[line.key];
  ring.id = id;
  ring.line = line.key;
  ring.caller = caller;
  ring.caller_name = name;
  ring.at_ms = now_ms();
  ring_ids_[ring.id] = line.key;
  callers_[caller] = line.key;
  ring.timer = std::move(timer);
  ctx_.host.metric_add(ctx_.metrics.rings, 1);
  ctx_.host.send(caller, message("ringing", [&](Writer &w) {
                   put(w, "ring", ring.id);
                   put(w, "name", line.name);
                 }));
  std::vector<std::string> open_devices;
  for (ConnId device : ctx_.attached.on_line(line.key)) {
    ring_device(device, ring);
    if (const Attachments::Entry *entry = ctx_.attached.of(device))
      open_devices.push_back(entry->device);
  }
  if (pushes_)
    ring.pushed = pushes_->ring(line, ring.id, name, ring.at_ms, ring_time_, open_devices);
}

void Ringing::ring_device(ConnId device, const Ring &ring) {
  ctx_.host.send(device, message("incoming", [&](Writer &w) {
                   put(w, "ring", ring.id);
                   put(w, "caller", ring.caller_name);
                   put(w, "at", ring.at_ms);
                 }));
}

void Ringing::attached(ConnId device, LineKey line) {
  auto it = rings_.find(line);
  if (it != rings_.end())
    ring_device(device, it->second);
}

Ringing::Ring *Ringing::find(const std::string &ring_id) {
  auto it = ring_ids_.find(ring_id);
  return it == ring_ids_.end() ? nullptr : &rings_.at(it->second);
}

// The ring, if it rings on this device's line.
Ringing::Ring *Ringing::device_ring(ConnId device, const std::string &ring_id) {
  Ring *ring = find(ring_id);
  const Attachments::Entry *entry = ctx_.attached.of(device);
  return ring && entry && entry->line == ring->line ? ring : nullptr;
}

Outcome Ringing::cancel(ConnId caller, const std::string &ring_id) {
  Ring *ring = find(ring_id);
  if (!ring || ring->caller != caller)
    return {"ring-unknown", "No ring of yours with this id is ringing (it may have ended)."};
  ctx_.host.metric_add(ctx_.metrics.cancelled, 1);
  end(*ring, "cancelled", "cancelled");
  return {};
}

Outcome Ringing::decline(ConnId device, const std::string &ring_id) {
  Ring *ring = device_ring(device, ring_id);
  if (!ring)
    return {"ring-unknown", "This ring is not ringing on this device's line (it may have ended)."};
  ctx_.host.metric_add(ctx_.metrics.declined, 1);
  end(*ring, "declined", "declined", 0, device);
  return {};
}

Outcome Ringing::accept(ConnId device, const std::string &ring_id) {
  Ring *ring = device_ring(device, ring_id);
  if (!ring)
    return {"ring-unknown", "This ring is not ringing on this device's line (it may have ended)."};
  ctx_.host.metric_add(ctx_.metrics.accepted, 1);
  connect(*ring, device);
  return {};
}

// Both sides get fresh pairing ids and open the call like any other.
void Ringing::connect(Ring &ring, ConnId device) {
  const LineKey line = ring.line;
  const std::string ring_id = ring.id, caller_id = new_call_id(), device_id = new_call_id();
  const ConnId caller = ring.caller;
  duet::Timer timer = ctx_.host.start_timer(kConnectWindow, {}, [this, line] { end_call(line); });
  end(ring, "answered-elsewhere", nullptr, device);
  Call &call = calls_[line];
  call.ids[0] = caller_id;
  call.ids[1] = device_id;
  call_ids_[caller_id] = line;
  call_ids_[device_id] = line;
  call.timer = std::move(timer);
  admit(ctx_.host, caller_id, device_id);
  admit(ctx_.host, device_id, caller_id);
  auto connect_message = [&](const std::string &local, const std::string &remote) {
    return message("ring-connect", [&](Writer &w) {
      put(w, "ring", ring_id);
      put(w, "local", local);
      put(w, "remote", remote);
    });
  };
  ctx_.host.send(caller, connect_message(caller_id, device_id));
  ctx_.host.send(device, connect_message(device_id, caller_id));
}

void Ringing::no_answer(const std::string &ring_id) {
  Ring *ring = find(ring_id);
  if (!ring)
    return;
  ctx_.host.metric_add(ctx_.metrics.missed, 1);
  const LineKey line = ring->line;
  const std::string caller = ring->caller_name;
  const std::int64_t at = ring->at_ms;
  const std::string missed = message("missed", [&](Writer &w) {
    put(w, "ring", ring_id);
    put(w, "caller", caller);
    put(w, "at", at);
  });
  // Taken (left empty): the end below pushes no ring-stop, the missed call replaces it.
  const std::vector<std::string> pushed = std::exchange(ring->pushed, {});
  end(*ring, "missed", "no-answer");
  for (ConnId device : ctx_.attached.on_line(line))
    ctx_.host.send(device, missed);
  if (pushes_)
    pushes_->missed(line, pushed, ring_id, caller, at);
  try {
    ctx_.store.add_missed(line, caller, at);
  } catch (const StoreError &e) {  // the line may be gone; the devices were told
    ctx_.host.log(DUET_LOG_WARN, std::string("a missed call was not stored: ") + e.what());
  }
}

void Ringing::end(Ring &ring, const char *device_reason, const char *caller_reason, ConnId except, ConnId answered) {
  const std::string stop = message("ring-stop", [&](Writer &w) {
    put(w, "ring", ring.id);
    put(w, "reason", device_reason);
  });
  for (ConnId device : ctx_.attached.on_line(ring.line))
    if (device != except)
      ctx_.host.send(device, stop);
  if (caller_reason)
    ctx_.host.send(ring.caller, message("ring-ended", [&](Writer &w) {
                     put(w, "ring", ring.id);
                     put(w, "reason", caller_reason);
                   }));
  if (pushes_ && !ring.pushed.empty()) {
    // The device that answered knows: a push would tell it "elsewhere".
    const ConnId by = answered ? answered : except;
    const Attachments::Entry *answerer = by ? ctx_.attached.of(by) : nullptr;
    std::vector<std::string> others = ring.pushed;
    if (answerer)
      others.erase(std::remove(others.begin(), others.end(), answerer->device), others.end());
    pushes_->stop(ring.line, others, ring.id, device_reason);
  }
  callers_.erase(ring.caller);
  ring_ids_.erase(ring.id);
  const LineKey line = ring.line;  // a copy: erase frees the node ring lives in
  rings_.erase(line);              // last: ring (and its timer, maybe running now) goes here
}

void Ringing::device_removed(ConnId device, LineKey line) {
  auto it = rings_.find(line);
  if (it == rings_.end())
    return;
  ctx_.host.send(device, message("ring-stop", [&](Writer &w) {
                   put(w, "ring", it->second.id);
                   put(w, "reason", "removed");
                 }));
}

void Ringing::closed(ConnId conn) {
  auto it = callers_.find(conn);
  if (it == callers_.end())
    return;
  ctx_.host.metric_add(ctx_.metrics.cancelled, 1);
  end(rings_.at(it->second), "cancelled", nullptr);
}

void Ringing::paired(const std::string &a, const std::string &b) {
  auto it = call_ids_.find(a), other = call_ids_.find(b);
  if (it == call_ids_.end() || other == call_ids_.end() || it->second != other->second)
    return;                            // not the two sides of one call
  calls_.at(it->second).timer.stop();  // the call is on: busy until it ends
}

void Ringing::unpaired(const std::string &a, const std::string &b) {
  for (const std::string *id : {&a, &b}) {
    auto it = call_ids_.find(*id);
    if (it != call_ids_.end()) {
      end_call(it->second);
      return;
    }
  }
}

void Ringing::line_gone(LineKey line) {
  if (auto it = rings_.find(line); it != rings_.end())
    end(it->second, "declined", "declined");
  end_call(line);
}

void Ringing::end_call(LineKey line) {
  auto it = calls_.find(line);
  if (it == calls_.end())
    return;
  for (const std::string &id : it->second.ids)
    call_ids_.erase(id);
  calls_.erase(it);  // may be the running timer's own call: the Timer allows it
}

void Ringing::prune(std::int64_t now) {
  per_address_.prune(now);
  per_line_.prune(now);
}

}  // namespace duet::ring
