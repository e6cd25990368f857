#include "pushes.hpp"

#include <algorithm>
#include <utility>

#include "duet/util.hpp"
#include "push_endpoint.hpp"

namespace duet::ring {

namespace {

// A ring's notifications share one topic: each replaces the one before it
// while the push service still holds it.
std::string topic_of(const std::string &ring_id) { return "ring-" + ring_id; }

// The browser's key as the store keeps it (raw bytes), or nullopt.
std::optional<std::string> key_bytes(const std::optional<std::string> &text, std::size_t size) {
  if (!text)
    return std::nullopt;
  std::string t = *text;
  while (!t.empty() && t.back() == '=')  // some browsers pad
    t.pop_back();
  std::optional<std::string> bytes = duet::from_base64url(t);
  return bytes && bytes->size() == size ? bytes : std::nullopt;
}

}  // namespace

Pushes::Pushes(Context &ctx, VapidKey key, PushSettings settings)
    : ctx_(ctx), key_(std::move(key)),
      sender_(ctx.host, key_, std::move(settings), [this](const std::string &device, const std::string &endpoint) {
        ctx_.store.remove_subscription(device, endpoint, [this](Answer<bool> removed) {
          if (!removed.ok())
            ctx_.host.log(DUET_LOG_WARN, "a gone push subscription was not removed");
        });
      }) {}

Outcome Pushes::key(ConnId conn) {
  ctx_.host.send(conn, message("line-push-key", [&](Writer &w) { put(w, "key", key_.public_key()); }));
  return {};
}

void Pushes::subscribe(ConnId conn, Request &req, const Reply &reply) {
  const auto endpoint = req.text("endpoint");
  const auto p256dh = req.text("keys", "p256dh"), auth = req.text("keys", "auth");
  if (!req.ok())
    return reply({"bad-request",
                  R"(line-push needs {"line-push":{"endpoint":"https://…","keys":{"p256dh":"…","auth":"…"}}})"
                  R"( (a PushSubscription's toJSON()), or {"line-push":{}} to stop pushes.)"});
  const Attachments::Entry *entry = ctx_.attached.of(conn);
  if (!entry)
    return reply(kNotAttached);
  if (!endpoint) {
    ctx_.store.remove_subscription(entry->device, {}, [this, conn, reply](Answer<bool> removed) {
      if (!removed.ok())
        return reply(removed.failure);
      ctx_.host.send(conn, message("line-push", [&](Writer &w) { put_bool(w, "push", false); }));
      reply({});
    });
    return;
  }
  const std::optional<Endpoint> parsed = parse_endpoint(*endpoint);
  if (!parsed)
    return reply({"push-endpoint-invalid", "A push endpoint is an https: URL of at most 1024 bytes."});
  const PushSettings &settings = sender_.settings();
  if (!host_allowed(parsed->host, settings.hosts) || (!settings.allow_private && refused_literal(parsed->host)))
    return reply({"push-host-refused", "This server does not send pushes to that host."});
  const auto ua_key = key_bytes(p256dh, 65), secret = key_bytes(auth, 16);
  if (!ua_key || !secret || !valid_p256_public_key(*ua_key))
    return reply({"push-keys-invalid", "keys.p256dh must be a P-256 public key (65 bytes) and keys.auth 16 bytes, "
                                       "in base64url."});
  ctx_.store.set_subscription({entry->device, *endpoint, *ua_key, *secret}, [this, conn, reply](Answer<bool> set) {
    if (!set.ok())
      return reply(set.failure);
    subscribed(conn);
    reply({});
  });
}

void Pushes::subscribed(ConnId conn) {
  const PushSettings &settings = sender_.settings();
  // Said when it matters (a server nobody subscribes on never needs it).
  if (settings.subject.empty() && !subject_warned_) {
    subject_warned_ = true;
    ctx_.host.log(DUET_LOG_WARN, "a device subscribed to pushes: set --ring-push-subject mailto:you@example.org "
                                 "(or an https: URL), as some push services, Apple's among them, refuse pushes "
                                 "without it");
  }
  ctx_.host.send(conn, message("line-push", [&](Writer &w) { put_bool(w, "push", true); }));
}

void Pushes::with_subscriptions(LineKey line, const std::function<void(const std::vector<Subscription> &)> &fn) {
  ctx_.store.subscriptions(line, [this, fn](const Answer<std::vector<Subscription>> &subs) {
    if (!subs.ok())
      ctx_.host.log(DUET_LOG_WARN, "no pushes: the subscriptions could not be read");
    fn(subs.value);
  });
}

void Pushes::push(const Subscription &sub, const std::string &topic, const char *urgency, const std::string &payload,
                  std::int64_t expires_ms) {
  const std::optional<Endpoint> endpoint = parse_endpoint(sub.endpoint);
  if (!endpoint)
    return;  // checked when stored: only a hand-edited store gets here
  Push p;
  p.device = sub.device;
  p.endpoint = sub.endpoint;
  p.origin = endpoint->origin;
  p.topic = topic;
  p.urgency = urgency;
  p.expires_ms = expires_ms;
  p.queued_ms = now_ms();
  try {
    p.body = encrypt_push(sub.p256dh, sub.auth, payload);
  } catch (const CryptoError &e) {
    ctx_.host.log(DUET_LOG_WARN, std::string("a push was not encrypted: ") + e.what());
    return;
  }
  sender_.send(std::move(p));
}

void Pushes::ring(const Line &line, const std::string &ring_id, const std::string &caller, std::int64_t at_ms,
                  std::chrono::milliseconds ring_time, const std::vector<std::string> &open,
                  const std::function<void(std::vector<std::string>)> &pushed_to) {
  const std::string payload = message("incoming", [&](Writer &w) {
    put(w, "ring", ring_id);
    put(w, "caller", caller);
    put(w, "at", at_ms);
    put(w, "line", line.name);
  });
  with_subscriptions(line.key, [=](const std::vector<Subscription> &subs) {
    std::vector<std::string> pushed;
    for (const Subscription &sub : subs) {
      if (std::find(open.begin(), open.end(), sub.device) != open.end())
        continue;  // its page rings over the WebSocket
      push(sub, topic_of(ring_id), "high", payload, at_ms + ring_time.count());
      pushed.push_back(sub.device);
    }
    pushed_to(std::move(pushed));
  });
}

void Pushes::push_to(LineKey line, const std::vector<std::string> &devices, const std::string &topic,
                     const char *urgency, const std::string &payload, std::int64_t expires_ms) {
  if (devices.empty())
    return;
  with_subscriptions(line, [=](const std::vector<Subscription> &subs) {
    for (const Subscription &sub : subs)
      if (std::find(devices.begin(), devices.end(), sub.device) != devices.end())
        push(sub, topic, urgency, payload, expires_ms);
  });
}

void Pushes::stop(LineKey line, const std::vector<std::string> &devices, const std::string &ring_id,
                  const char *reason) {
  const std::string payload = message("ring-stop", [&](Writer &w) {
    put(w, "ring", ring_id);
    put(w, "reason", reason);
  });
  push_to(line, devices, topic_of(ring_id), "high", payload,
          now_ms() + std::chrono::duration_cast<std::chrono::milliseconds>(kStopLife).count());
}

void Pushes::missed(LineKey line, const std::vector<std::string> &devices, const std::string &ring_id,
                    const std::string &caller, std::int64_t at_ms) {
  const std::string payload = message("missed", [&](Writer &w) {
    put(w, "ring", ring_id);
    put(w, "caller", caller);
    put(w, "at", at_ms);
  });
  push_to(line, devices, topic_of(ring_id), "normal", payload,
          now_ms() + std::chrono::duration_cast<std::chrono::milliseconds>(kMissedLife).count());
}

}  // namespace duet::ring
