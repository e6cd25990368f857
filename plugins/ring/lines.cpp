#include "lines.hpp"

#include <utility>

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

Outcome Lines::create(ConnId conn, Request &req, const std::string &address) {
  const auto name = req.text("name"), label = req.text("label");
  if (!req.ok())
    return {"bad-request", R"(line-create needs {"line-create":{"name":"shown to callers","label":"this device"}}.)"};
  if (Outcome o = check_name(name, true); !o.ok())
    return o;
  if (Outcome o = check_name(label, false); !o.ok())
    return o;
  if (!creates_.allow(address, now_ms()))
    return {"create-rate-limited", "Too many lines made from your address: wait an hour."};
  if (ctx_.store.line_count() >= max_lines_) {
    ctx_.host.metric_add(ctx_.metrics.limited_full, 1);
    return {"lines-full", "This server holds as many lines as it may: no new ones for now."};
  }
  const NewDevice made = new_device(label_or_default(label));
  const Line line = ctx_.store.create_line(new_line_id(), *name, made.device, sha256(made.secret), now_ms());
  ctx_.host.metric_add(ctx_.metrics.lines_created, 1);
  attach_as(conn, line.key, made);
  return {};
}

// Tells conn its new credentials, attaches it, and tells the line.
void Lines::attach_as(ConnId conn, LineKey line, const NewDevice &made) {
  ctx_.host.send(conn, message("line-credentials", [&](Writer &w) {
                   put(w, "device", made.device.id);
                   put(w, "secret", made.secret);
                 }));
  ctx_.attached.attach(conn, line, made.device.id);
  ctx_.host.metric_set(ctx_.metrics.devices_attached, static_cast<std::int64_t>(ctx_.attached.size()));
  tell_line(line);
}

Outcome Lines::attach(ConnId conn, Request &req) {
  const auto device = req.text("device"), secret = req.text("secret");
  if (!req.ok() || !device || !secret)
    return {"bad-request", R"(line-attach needs {"line-attach":{"device":"…","secret":"…"}} with strings.)"};
  const std::optional<DeviceRecord> record = ctx_.store.device(*device);
  // Hash even for an unknown device: both answers take the same time.
  const std::string hash = sha256(*secret);
  if (!record || !same_secret(record->secret_hash, hash))
    return kDeviceUnknown;
  const std::optional<Line> line = ctx_.store.line(record->line);
  if (!line)
    return kDeviceUnknown;
  ctx_.attached.attach(conn, line->key, *device);
  ctx_.host.metric_set(ctx_.metrics.devices_attached, static_cast<std::int64_t>(ctx_.attached.size()));
  ctx_.host.send(conn, state(*line, *device));
  ringing_.attached(conn, line->key);
  return {};
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

Outcome Lines::change(ConnId conn, const std::function<Outcome(LineKey)> &apply) {
  Outcome out;
  const Attachments::Entry *entry = attached(conn, out);
  if (!entry)
    return out;
  const LineKey line = entry->line;
  if (out = count_change(line); !out.ok())
    return out;
  out = apply(line);
  if (out.ok())
    tell_line(line);
  return out;
}

Outcome Lines::rename(ConnId conn, Request &req) {
  const auto name = req.text("name");
  if (!req.ok())
    return {"bad-request", R"(line-rename needs {"line-rename":{"name":"…"}}.)"};
  return change(conn, [&](LineKey line) {
    if (Outcome o = check_name(name, true); !o.ok())
      return o;
    ctx_.store.rename(line, *name);
    return Outcome{};
  });
}

// The old link rings nobody from now on: its id is gone from the store.
Outcome Lines::new_link(ConnId conn, Request &) {
  return change(conn, [&](LineKey line) {
    ctx_.store.relink(line, new_line_id());
    return Outcome{};
  });
}

Outcome Lines::invite(ConnId conn, Request &) {
  Outcome out;
  const Attachments::Entry *entry = attached(conn, out);
  if (!entry)
    return out;
  if (out = count_change(entry->line); !out.ok())
    return out;
  const std::string code = new_invite_code();
  const std::int64_t now = now_ms();
  ctx_.store.add_invite(entry->line, sha256(code), now, now + kInviteLifeMs);
  ctx_.host.send(conn, message("line-invite", [&](Writer &w) {
                   put(w, "code", code);
                   put(w, "expires_in_s", kInviteLifeMs / 1000);
                 }));
  return {};
}

Outcome Lines::join(ConnId conn, Request &req, const std::string &address) {
  const auto code = req.text("code"), label = req.text("label");
  if (!req.ok() || !code)
    return {"bad-request", R"(line-join needs {"line-join":{"code":"…","label":"this device"}}.)"};
  if (Outcome o = check_name(label, false); !o.ok())
    return o;
  if (!joins_.allow(address, now_ms()))
    return {"join-rate-limited", "Too many attempts to join a line from your address: wait a minute."};
  const std::string code_hash = sha256(*code);
  const std::optional<LineKey> line = ctx_.store.invite_line(code_hash, now_ms());
  if (!line)
    return {"code-invalid", "This code is unknown, used or expired: show a new one on a device of the line."};
  // A full line leaves the code unused: it works once a device is removed.
  if (ctx_.store.devices(*line).size() >= kMaxDevices)
    return {"too-many-devices", "This line has as many devices as it may have: remove one first."};
  ctx_.store.take_invite(code_hash, now_ms());
  const NewDevice made = new_device(label_or_default(label));
  ctx_.store.add_device(*line, made.device, sha256(made.secret), now_ms());
  attach_as(conn, *line, made);
  return {};
}

Outcome Lines::remove_device(ConnId conn, Request &req) {
  Outcome out;
  const Attachments::Entry *entry = attached(conn, out);
  const auto device = req.text("device");
  if (!req.ok() || !device)
    return {"bad-request", R"(line-remove-device needs {"line-remove-device":{"device":"…"}}.)"};
  if (!entry)
    return out;
  const LineKey line = entry->line;
  if (!ctx_.store.remove_device(line, *device))
    return {"device-unknown", "No device with this id is on your line."};
  const std::string removed = message("line-removed", [&](Writer &w) { put(w, "device", *device); });
  for (ConnId c : ctx_.attached.on_line(line)) {
    const Attachments::Entry *e = ctx_.attached.of(c);
    if (e && e->device == *device) {
      ringing_.device_removed(c, line);
      ctx_.host.send(c, removed);
      ctx_.attached.detach(c);
    }
  }
  ctx_.host.metric_set(ctx_.metrics.devices_attached, static_cast<std::int64_t>(ctx_.attached.size()));
  if (!ctx_.store.line(line))
    ringing_.line_gone(line);  // its last device went: a caller must not wait for nobody
  tell_line(line);
  return {};
}

void Lines::tell_line(LineKey key) {
  const std::optional<Line> line = ctx_.store.line(key);
  if (!line)
    return;  // its last device went: nobody to tell
  for (ConnId c : ctx_.attached.on_line(key))
    if (const Attachments::Entry *e = ctx_.attached.of(c))
      ctx_.host.send(c, state(*line, e->device));
}

// {"line":{"line":ID,"name":…,"device":YOURS,"devices":[…],"missed":[…]}}
std::string Lines::state(const Line &line, const std::string &device) {
  const std::vector<Device> devices = ctx_.store.devices(line.key);
  const std::vector<Missed> missed = ctx_.store.missed(line.key, 20);
  return message("line", [&](Writer &w) {
    put(w, "line", line.id);
    put(w, "name", line.name);
    put(w, "device", device);
    w.Key("devices");
    w.StartArray();
    for (const Device &d : devices) {
      w.StartObject();
      put(w, "device", d.id);
      put(w, "label", d.label);
      w.EndObject();
    }
    w.EndArray();
    w.Key("missed");
    w.StartArray();
    for (const Missed &m : missed) {
      w.StartObject();
      put(w, "caller", m.caller);
      put(w, "at", m.at_ms);
      w.EndObject();
    }
    w.EndArray();
  });
}

}  // namespace duet::ring
