// Delivery of Web Push messages (RFC 8030) on duetd's own loop, never
// blocking it: libcurl's multi interface, its sockets watched and its
// timeouts timed by duetd (host fd_watch and timers). libcurl because it is
// the HTTP client every distribution keeps patched, speaks HTTP/2 (what
// the big push services prefer) and lets us vet each address before it
// connects. Bounded everywhere: pushes in flight, a queue, a timeout per
// request, a few retries with backoff on 429 and 5xx (honouring
// Retry-After), never past the message's own lifetime.
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

#include <curl/curl.h>

#include "duet/plugin.hpp"
#include "push_crypto.hpp"

namespace duet::ring {

// libcurl's global state, set up while the plugin lives.
class CurlLibrary {
public:
  CurlLibrary() {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      throw duet::EnvironmentError("libcurl could not start");
  }
  ~CurlLibrary() { curl_global_cleanup(); }
  CurlLibrary(const CurlLibrary &) = delete;
  CurlLibrary &operator=(const CurlLibrary &) = delete;
};

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
  struct InFlight;
  struct Socket {
    PushSender *sender;
    int fd;
    std::int64_t watch;
  };
  struct Metrics {
    explicit Metrics(const duet::Host &host);
    std::int64_t sent, gone, rejected, throttled, server_error, timeout, network_error, refused, retried, dropped,
        in_flight, latency_ms;
  };

  void start_queued();
  void start(Push push);
  void finished(CURL *easy, int result);
  void retry(Push push, std::chrono::milliseconds delay);
  const std::string &authorization(const std::string &origin);
  void socket_action(int fd, int flags);
  static curl_socket_t open_socket(void *request, curlsocktype purpose, struct curl_sockaddr *address);
  static int on_socket(CURL *easy, curl_socket_t fd, int what, void *sender, void *socket);
  static int on_timer(CURLM *multi, long timeout_ms, void *sender);
  static void on_ready(void *socket, std::uint32_t ready);

  const duet::Host &host_;
  const VapidKey &key_;
  PushSettings settings_;
  std::function<void(const std::string &, const std::string &)> gone_;
  Metrics metrics_;
  CURLM *multi_ = nullptr;
  duet::Timer curl_timer_;
  std::unordered_map<int, std::unique_ptr<Socket>> sockets_;
  std::unordered_map<CURL *, std::unique_ptr<InFlight>> in_flight_;
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
