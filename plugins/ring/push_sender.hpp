// Delivery of Web Push messages (RFC 8030) on duetd's own loop, never
// blocking it, through the plugins' HTTP client (common/http_client.hpp),
// which refuses any address that is not public. Bounded everywhere: pushes
// in flight, a queue, a timeout per request, a few retries with backoff on
// 429 and 5xx (honouring Retry-After), never past the message's own
// lifetime.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/http_client.hpp"
#include "duet/plugin.hpp"
#include "push_crypto.hpp"

namespace duet::ring {

struct PushSettings {
  std::string subject;             // VAPID "sub": mailto: or https: (may be empty)
  std::vector<std::string> hosts;  // allowed push hosts; empty: any public one
  bool allow_private = false;      // tests only: push services on loopback
  std::string ca_file;             // tests only: trust this CA for push services
  std::chrono::milliseconds timeout{10000};
  std::size_t max_in_flight = 64;
  std::size_t max_queued = 4096;
};

// One encrypted message for one device's subscription.
struct Push {
  std::string device;
  std::string endpoint;
  std::string origin;  // the endpoint's, the VAPID audience
  std::string body;    // aes128gcm
  std::string topic;   // replaces an undelivered message with the same topic
  std::string urgency;
  std::int64_t expires_ms = 0;  // worthless after: TTL counts down to it
  std::int64_t queued_ms = 0;
  int attempt = 0;
};

class PushSender {
public:
  // gone(device, endpoint): the push service said the subscription no
  // longer exists (404 or 410).
  PushSender(const duet::Host &host, const VapidKey &key, PushSettings settings,
             std::function<void(const std::string &, const std::string &)> gone);
  ~PushSender();
  PushSender(const PushSender &) = delete;
  PushSender &operator=(const PushSender &) = delete;

  const PushSettings &settings() const { return settings_; }
  void send(Push push);

  static constexpr int kMaxAttempts = 4;
  static constexpr std::chrono::minutes kMaxRetryAfter{10};

private:
  struct Metrics {
    explicit Metrics(const duet::Host &host);
    std::int64_t sent, gone, rejected, throttled, server_error, timeout, network_error, refused, retried, dropped,
        in_flight, latency_ms;
  };

  void start_queued();
  void start(Push push);
  void finished(Push push, const duet::http::Response &response);
  void retry(Push push, std::chrono::milliseconds delay);
  const std::string &authorization(const std::string &origin);

  const duet::Host &host_;
  const VapidKey &key_;
  PushSettings settings_;
  std::function<void(const std::string &, const std::string &)> gone_;
  Metrics metrics_;
  duet::http::Client client_;
  std::deque<Push> queue_;
  std::map<std::uint64_t, duet::Timer> retry_timers_;
  std::uint64_t next_retry_ = 0;
  struct Authorization {
    std::string header;
    std::int64_t renew_ms = 0;
  };
  std::unordered_map<std::string, Authorization> authorizations_;  // by origin
};

}  // namespace duet::ring
