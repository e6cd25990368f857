#include "lines.hpp"

#include <utility>

#include "bus.hpp"
#include "ids.hpp"

namespace duet::ring {

namespace {

// One answer for an unknown device and a wrong secret: no hint which.
const Outcome kDeviceUnknown = {"device-unknown", "No device with this id and secret is on a line."};

// A label for a device that gave none.
std::string label_or_default(const std::optional<std::string> &label) {
  return label && !label->empty() ? *label : std::string("device");
}

}  // namespace

Lines::NewDevice Lines::new_device(const std::string &label) { return {{random_hex(8), label}, random_hex(16)}; }

void Lines::create(ConnId conn, Request &req, const std::string &address, const Reply &reply) {
  const auto name = req.text("name"), label = req.text("label");
  if (!req.ok())
    return reply(
        {"bad-request", R"(line-create needs {"line-create":{"name":"shown to callers","label":"this device"}}.)"});
  if (Outcome o = check_name(name, true); !o.ok())
    return reply(o);
  if (Outcome o = check_name(label, false); !o.ok())
    return reply(o);
  if (!creates_.allow(address, now_ms()))
    return reply({"create-rate-limited", "Too many lines made from your address: wait an hour."});
  const NewDevice made = new_device(label_or_default(label));
  ctx_.store.create_line(new_line_id(), *name, made.device, sha256(made.secret), max_lines_,
                         [this, conn, made, reply](Answer<std::optional<Line>> created) {
                           if (!created.ok())
                             return reply(created.failure);
                           if (!created.value) {
                             ctx_.host.metric_add(ctx_.metrics.limited_full, 1);
                             return reply({"lines-full", "This server holds as many lines as it may: no new ones "
                                                         "for now."});
                           }
                           ctx_.host.metric_add(ctx_.metrics.lines_created, 1);
                           attach_as(conn, created.value->key, made);
                           reply({});
                         });
}

// Tells conn its new credentials, attaches it, and tells the line.
void Lines::attach_as(ConnId conn, LineKey line, const NewDevice &made) {
  if (ctx_.live(conn)) {
    ctx_.host.send(conn, message("line-credentials", [&](Writer &w) {
                     put(w, "device", made.device.id);
                     put(w, "secret", made.secret);
                   }));
    attach_conn(conn, line, made.device.id);
  }
  tell_line(line);  // the line's other devices see the new one
}

void Lines::attach_conn(ConnId conn, LineKey line, const std::string &device) {
  if (const Attachments::Entry *was = ctx_.attached.of(conn))
    if (!(was->line == line && was->device == device))
      closed(conn);
  ctx_.attached.attach(conn, line, device);
  ctx_.bus.device_opened(line, device);
  ctx_.host.metric_set(ctx_.metrics.devices_attached, static_cast<std::int64_t>(ctx_.attached.size()));
}

void Lines::closed(ConnId conn) {
  const Attachments::Entry *entry = ctx_.attached.of(conn);
  if (!entry)
    return;
  const Attachments::Entry was = *entry;
  ctx_.attached.detach(conn);
  if (!ctx_.attached.open_here(was.line, was.device))
    ctx_.bus.device_closed(was.line, was.device);
  ctx_.host.metric_set(ctx_.metrics.devices_attached, static_cast<std::int64_t>(ctx_.attached.size()));
}

void Lines::attach(ConnId conn, Request &req, const Reply &reply) {
  const auto device = req.text("device"), secret = req.text("secret");
  if (!req.ok() || !device || !secret)
    return reply({"bad-request", R"(line-attach needs {"line-attach":{"device":"…","secret":"…"}} with strings.)"});
  // Hashed before the lookup: an unknown device and a wrong secret take the same time.
  const std::string hash = sha256(*secret);
  ctx_.store.device(*device, [this, conn, device = *device, hash, reply](Answer<std::optional<DeviceRecord>> found) {
    if (!found.ok())
      return reply(found.failure);
    if (!found.value || !same_secret(found.value->secret_hash, hash))
      return reply(kDeviceUnknown);
    ctx_.store.state(found.value->line, [this, conn, device, reply](Answer<std::optional<LineState>> line) {
      if (!line.ok())
        return reply(line.failure);
      if (!line.value)
        return reply(kDeviceUnknown);
      if (ctx_.live(conn)) {
        attach_conn(conn, line.value->line.key, device);
        ctx_.host.send(conn, state(*line.value, device));
        ringing_.attached(conn, line.value->line.key);
      }
      reply({});
    });
  });
}

const Attachments::Entry *Lines::attached(ConnId conn, Outcome &out) const {
  const Attachments::Entry *entry = ctx_.attached.of(conn);
  if (!entry)
    out = kNotAttached;
  return entry;
}

Outcome Lines::count_change(LineKey line) {
  if (changes_.allow(std::to_string(line), now_ms()))
    return {};
  ctx_.host.metric_add(ctx_.metrics.limited_change, 1);
  return {"change-rate-limited", "This line changed too often (renames, new links, invites): wait an hour."};
}

void Lines::change(ConnId conn, const Reply &reply, const std::function<void(LineKey, Done)> &apply) {
  Outcome out;
  const Attachments::Entry *entry = attached(conn, out);
  if (!entry)
    return reply(out);
  const LineKey line = entry->line;
  if (out = count_change(line); !out.ok())
    return reply(out);
  apply(line, [this, line, reply](Answer<bool> applied) {
    if (!applied.ok())
      return reply(applied.failure);
    tell_line(line);
    reply({});
  });
}

void Lines::rename(ConnId conn, Request &req, const Reply &reply) {
  const auto name = req.text("name");
  if (!req.ok())
    return reply({"bad-request", R"(line-rename needs {"line-rename":{"name":"…"}}.)"});
  if (ctx_.attached.of(conn))
    if (Outcome o = check_name(name, true); !o.ok())
      return reply(o);
  change(conn, reply, [this, name](LineKey line, Done done) { ctx_.store.rename(line, *name, std::move(done)); });
}

// The old link rings nobody from now on: its id is gone from the store.
void Lines::new_link(ConnId conn, Request &, const Reply &reply) {
  change(conn, reply, [this](LineKey line, Done done) { ctx_.store.relink(line, new_line_id(), std::move(done)); });
}

void Lines::invite(ConnId conn, Request &, const Reply &reply) {
  Outcome out;
  const Attachments::Entry *entry = attached(conn, out);
  if (!entry)
    return reply(out);
  if (out = count_change(entry->line); !out.ok())
    return reply(out);
  const std::string code = new_invite_code();
  ctx_.store.add_invite(entry->line, sha256(code), kInviteLifeMs, [this, conn, code, reply](Answer<bool> added) {
    if (!added.ok())
      return reply(added.failure);
    ctx_.host.send(conn, message("line-invite", [&](Writer &w) {
                     put(w, "code", code);
                     put(w, "expires_in_s", kInviteLifeMs / 1000);
                   }));
    reply({});
  });
}

void Lines::join(ConnId conn, Request &req, const std::string &address, const Reply &reply) {
  const auto code = req.text("code"), label = req.text("label");
  if (!req.ok() || !code)
    return reply({"bad-request", R"(line-join needs {"line-join":{"code":"…","label":"this device"}}.)"});
  if (Outcome o = check_name(label, false); !o.ok())
    return reply(o);
  if (!joins_.allow(address, now_ms()))
    return reply({"join-rate-limited", "Too many attempts to join a line from your address: wait a minute."});
  const NewDevice made = new_device(label_or_default(label));
  ctx_.store.join(sha256(*code), made.device, sha256(made.secret), kMaxDevices,
                  [this, conn, made, reply](Answer<Joined> joined) {
                    if (!joined.ok())
                      return reply(joined.failure);
                    switch (joined.value.result) {
                    case JoinResult::code_invalid:
                      return reply({"code-invalid", "This code is unknown, used or expired: show a new one on a "
                                                    "device of the line."});
                    case JoinResult::line_full:  // the code stays unused: it works once a device is removed
                      return reply({"too-many-devices", "This line has as many devices as it may have: remove one "
                                                        "first."});
                    case JoinResult::joined:
                      break;
                    }
                    attach_as(conn, joined.value.line, made);
                    reply({});
                  });
}

void Lines::remove_device(ConnId conn, Request &req, const Reply &reply) {
  Outcome out;
  const Attachments::Entry *entry = attached(conn, out);
  const auto device = req.text("device");
  if (!req.ok() || !device)
    return reply({"bad-request", R"(line-remove-device needs {"line-remove-device":{"device":"…"}}.)"});
  if (!entry)
    return reply(out);
  const LineKey line = entry->line;
  ctx_.store.remove_device(line, *device, [this, line, device = *device, reply](Answer<Removal> removal) {
    if (!removal.ok())
      return reply(removal.failure);
    if (!removal.value.removed)
      return reply({"device-unknown", "No device with this id is on your line."});
    ctx_.bus.publish(object([&](Writer &w) {
      put(w, "ev", "device-removed");
      put(w, "line", line);
      put(w, "device", device);
    }));
    if (removal.value.line_gone)
      ringing_.line_gone(line);  // its last device went: a caller must not wait for nobody
    else
      tell_line(line);
    reply({});
  });
}

void Lines::tell_line(LineKey line) {
  ctx_.bus.publish(object([&](Writer &w) {
    put(w, "ev", "line-changed");
    put(w, "line", line);
  }));
}

bool Lines::on_event(const std::string &kind, const rapidjson::Document &event) {
  const LineKey line = int64_member(event, "line").value_or(0);
  if (kind == "line-changed")
    on_line_changed(line);
  else if (kind == "device-removed")
    on_device_removed(line, string_member(event, "device").value_or(std::string()));
  else
    return false;
  return true;
}

// Each node tells its own devices of the line.
void Lines::on_line_changed(LineKey key) {
  if (ctx_.attached.on_line(key).empty())
    return;
  ctx_.store.state(key, [this, key](Answer<std::optional<LineState>> line) {
    if (!line.ok() || !line.value)
      return;  // its last device went: nobody to tell
    for (ConnId c : ctx_.attached.on_line(key))
      if (const Attachments::Entry *e = ctx_.attached.of(c))
        ctx_.host.send(c, state(*line.value, e->device));
  });
}

void Lines::on_device_removed(LineKey line, const std::string &device) {
  const std::string removed = message("line-removed", [&](Writer &w) { put(w, "device", device); });
  for (ConnId c : ctx_.attached.on_line(line)) {
    const Attachments::Entry *e = ctx_.attached.of(c);
    if (e && e->device == device) {
      ringing_.device_removed(c, line);
      ctx_.host.send(c, removed);
      closed(c);
    }
  }
}

// {"line":{"line":ID,"name":…,"device":YOURS,"devices":[…],"missed":[…]}}
std::string Lines::state(const LineState &line, const std::string &device) {
  return message("line", [&](Writer &w) {
    put(w, "line", line.line.id);
    put(w, "name", line.line.name);
    put(w, "device", device);
    w.Key("devices");
    w.StartArray();
    for (const Device &d : line.devices) {
      w.StartObject();
      put(w, "device", d.id);
      put(w, "label", d.label);
      w.EndObject();
    }
    w.EndArray();
    w.Key("missed");
    w.StartArray();
    for (const Missed &m : line.missed) {
      w.StartObject();
      put(w, "caller", m.caller);
      put(w, "at", m.at_ms);
      w.EndObject();
    }
    w.EndArray();
  });
}

}  // namespace duet::ring
