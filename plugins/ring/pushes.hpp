// Web Push for devices without an open page: a device registers its push
// subscription (line-push), and a ring reaches it as an encrypted push the
// service worker shows as a notification; the ring's end and a missed call
// follow with the same Topic, so they replace the ring where it was not
// yet delivered. Payloads are the same JSON as the WebSocket messages.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "context.hpp"
#include "push_crypto.hpp"
#include "push_sender.hpp"
#include "wire.hpp"

namespace duet::ring {

class Pushes {
public:
  // key: the VAPID key pushes are signed with (vapid_command.hpp's file,
  // or a cluster's shared one).
  Pushes(Context &ctx, VapidKey key, PushSettings settings);

  // {"line-push-key":{}}: answers the key to subscribe with.
  Outcome key(ConnId conn);
  // {"line-push":SUBSCRIPTION} (PushSubscription.toJSON()): this device's
  // subscription, replacing its last; {"line-push":{}} removes it.
  void subscribe(ConnId conn, Request &req, const Reply &reply);

  // A ring for every device of line with a subscription and no open page
  // (not in open); pushed gets the devices pushed to.
  void ring(const Line &line, const std::string &ring_id, const std::string &caller, std::int64_t at_ms,
            std::chrono::milliseconds ring_time, const std::vector<std::string> &open,
            const std::function<void(std::vector<std::string>)> &pushed);
  // The ring ended without this device: its notification goes.
  void stop(LineKey line, const std::vector<std::string> &devices, const std::string &ring_id, const char *reason);
  void missed(LineKey line, const std::vector<std::string> &devices, const std::string &ring_id,
              const std::string &caller, std::int64_t at_ms);

  // Missed-call notifications wait this long for a device that is off.
  static constexpr std::chrono::hours kMissedLife{24};
  // A ring's end waits as long as the ring did, so it replaces it.
  static constexpr std::chrono::minutes kStopLife{10};

private:
  // fn with the line's subscriptions; a store that fails means no pushes
  // (the open pages still ring).
  void with_subscriptions(LineKey line, const std::function<void(const std::vector<Subscription> &)> &fn);
  void subscribed(ConnId conn);  // answers, and asks for a push subject once
  void push(const Subscription &sub, const std::string &topic, const char *urgency, const std::string &payload,
            std::int64_t expires_ms);
  void push_to(LineKey line, const std::vector<std::string> &devices, const std::string &topic, const char *urgency,
               const std::string &payload, std::int64_t expires_ms);

  Context &ctx_;
  VapidKey key_;
  PushSender sender_;
  bool subject_warned_ = false;  // said once, when the first device subscribes
};

}  // namespace duet::ring
