#include "push_sender.hpp"

#include <algorithm>
#include <utility>

#include "context.hpp"
#include "push_endpoint.hpp"

namespace duet::ring {

namespace {

// A VAPID JWT lives 12 hours (the limit is 24) and is made anew an hour
// before it ends: one signature per push service per 11 hours.
constexpr std::int64_t kJwtLifeS = 12 * 3600;
constexpr std::int64_t kJwtRenewMs = 11 * 3600 * 1000LL;

}  // namespace

PushSender::Metrics::Metrics(const duet::Host &host)
    : sent(host.metric("ring_pushes_sent_total", "Pushes a push service accepted (2xx).", DUET_METRIC_COUNTER)),
      gone(host.metric("ring_pushes_gone_total", "Pushes answered 404 or 410: the subscription was removed.",
                       DUET_METRIC_COUNTER)),
      rejected(host.metric("ring_pushes_rejected_total", "Pushes answered with another 4xx (not retried).",
                           DUET_METRIC_COUNTER)),
      throttled(host.metric("ring_pushes_throttled_total", "Push attempts answered 429.", DUET_METRIC_COUNTER)),
      server_error(host.metric("ring_pushes_server_error_total", "Push attempts answered 5xx.", DUET_METRIC_COUNTER)),
      timeout(host.metric("ring_pushes_timeout_total", "Push attempts that timed out.", DUET_METRIC_COUNTER)),
      network_error(host.metric("ring_pushes_network_error_total", "Push attempts that failed to connect or in TLS.",
                                DUET_METRIC_COUNTER)),
      refused(host.metric("ring_pushes_refused_total",
                          "Pushes never sent: the endpoint resolved to a private, loopback or link-local address.",
                          DUET_METRIC_COUNTER)),
      retried(
          host.metric("ring_pushes_retried_total", "Push attempts made again after a failure.", DUET_METRIC_COUNTER)),
      dropped(host.metric("ring_pushes_dropped_total",
                          "Pushes given up: the queue was full, or retries ran out or past the message's life.",
                          DUET_METRIC_COUNTER)),
      in_flight(host.metric("ring_pushes_in_flight", "Push requests open now.", DUET_METRIC_GAUGE)),
      latency_ms(host.metric("ring_push_latency_milliseconds_total",
                             "Time from queueing to acceptance, summed over sent pushes (divide by sent).",
                             DUET_METRIC_COUNTER)) {}

namespace {
duet::http::ClientSettings client_settings(const PushSettings &settings) {
  duet::http::ClientSettings c;
  c.user_agent = "duetd-ring";
  c.ca_file = settings.ca_file;
  if (!settings.allow_private)  // push endpoints come from browsers: never an address of ours
    c.address_allowed = [](const sockaddr *address) { return public_address(address); };
  return c;
}
}  // namespace

PushSender::PushSender(const duet::Host &host, const VapidKey &key, PushSettings settings,
                       std::function<void(const std::string &, const std::string &)> gone)
    : host_(host), key_(key), settings_(std::move(settings)), gone_(std::move(gone)), metrics_(host),
      client_(host, client_settings(settings_)) {}

PushSender::~PushSender() = default;

void PushSender::send(Push push) {
  if (queue_.size() >= settings_.max_queued) {
    host_.metric_add(metrics_.dropped, 1);
    return;
  }
  queue_.push_back(std::move(push));
  start_queued();
}

void PushSender::start_queued() {
  while (!queue_.empty() && client_.in_flight() < settings_.max_in_flight) {
    Push push = std::move(queue_.front());
    queue_.pop_front();
    start(std::move(push));
  }
  host_.metric_set(metrics_.in_flight, static_cast<std::int64_t>(client_.in_flight()));
}

const std::string &PushSender::authorization(const std::string &origin) {
  const std::int64_t now = now_ms();
  Authorization &a = authorizations_[origin];
  if (a.header.empty() || now >= a.renew_ms) {
    if (authorizations_.size() > 256) {  // endpoints on many hosts: keep the map small
      authorizations_.clear();
      return authorization(origin);
    }
    a.header = "Authorization: " + key_.authorization(origin, settings_.subject, now / 1000 + kJwtLifeS);
    a.renew_ms = now + kJwtRenewMs;
  }
  return a.header;
}

void PushSender::start(Push push) {
  const std::int64_t now = now_ms();
  if (now >= push.expires_ms) {
    host_.metric_add(metrics_.dropped, 1);
    return;
  }
  push.attempt++;
  const std::int64_t ttl_s = std::max<std::int64_t>(0, (push.expires_ms - now) / 1000);
  duet::http::Request request;
  request.url = push.endpoint;
  request.body = push.body;
  request.timeout = settings_.timeout;
  request.headers = {"Content-Encoding: aes128gcm",   "Content-Type: application/octet-stream",
                     "TTL: " + std::to_string(ttl_s), "Urgency: " + push.urgency,
                     "Topic: " + push.topic,          authorization(push.origin)};
  // std::function must be copyable: the push rides in a shared_ptr.
  auto held = std::make_shared<Push>(std::move(push));
  if (!client_.start(request, [this, held](const duet::http::Response &r) { finished(std::move(*held), r); }))
    host_.metric_add(metrics_.dropped, 1);
}

void PushSender::finished(Push push, const duet::http::Response &response) {
  const long status = response.status;
  if (response.refused) {
    host_.metric_add(metrics_.refused, 1);
  } else if (response.ok()) {
    host_.metric_add(metrics_.sent, 1);
    host_.metric_add(metrics_.latency_ms, now_ms() - push.queued_ms);
  } else if (response.answered() && (status == 404 || status == 410)) {
    host_.metric_add(metrics_.gone, 1);
    gone_(push.device, push.endpoint);
  } else if (response.answered() && status != 429 && status < 500) {
    host_.metric_add(metrics_.rejected, 1);
  } else {
    // 429, 5xx, a timeout or a network failure: worth another try.
    if (response.answered())
      host_.metric_add(status == 429 ? metrics_.throttled : metrics_.server_error, 1);
    else
      host_.metric_add(response.timed_out() ? metrics_.timeout : metrics_.network_error, 1);
    std::chrono::milliseconds delay = std::chrono::seconds(1 << (push.attempt - 1));
    if (response.retry_after_s > 0)
      delay = std::min<std::chrono::milliseconds>(std::chrono::seconds(response.retry_after_s), kMaxRetryAfter);
    retry(std::move(push), delay);
  }
  start_queued();
}

void PushSender::retry(Push push, std::chrono::milliseconds delay) {
  if (push.attempt >= kMaxAttempts || now_ms() + delay.count() >= push.expires_ms) {
    host_.metric_add(metrics_.dropped, 1);
    return;
  }
  host_.metric_add(metrics_.retried, 1);
  const std::uint64_t id = ++next_retry_;
  auto shared = std::make_shared<Push>(std::move(push));
  retry_timers_.emplace(id, host_.start_timer(delay, {}, [this, id, shared] {
    Push again = std::move(*shared);
    retry_timers_.erase(id);  // this timer: allowed from its own callback
    send(std::move(again));
  }));
}

}  // namespace duet::ring
