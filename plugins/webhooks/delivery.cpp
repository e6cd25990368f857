#include "delivery.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include <openssl/rand.h>

#include "signature.hpp"

namespace duet::webhooks {

namespace {

using Clock = std::chrono::steady_clock;

// A full outbox or a receiver that is down is said at most this often.
constexpr auto kLogInterval = std::chrono::minutes(1);

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string type_of(const std::string &body) {
  // The body starts {"type":"…" (events.cpp writes it first).
  const std::string head = R"({"type":")";
  if (body.compare(0, head.size(), head) != 0)
    return "event";
  const std::size_t end = body.find('"', head.size());
  return end == std::string::npos ? "event" : body.substr(head.size(), end - head.size());
}

std::string what_failed(const duet::http::Response &response) {
  if (response.refused)
    return "is not an address webhooks may use";
  if (response.answered())
    return "answered " + std::to_string(response.status);
  if (response.timed_out())
    return "did not answer in time";
  return std::string("cannot be reached (") + curl_easy_strerror(response.result) + ")";
}

}  // namespace

std::string new_event_id() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1)
    throw duet::EnvironmentError("OpenSSL could not make random bytes for a webhook id");
  static const char hex[] = "0123456789abcdef";
  std::string id = "evt_";
  for (unsigned char b : bytes) {
    id += hex[b >> 4];
    id += hex[b & 15];
  }
  return id;
}

Delivery::Metrics::Metrics(const duet::Host &host)
    : queued(host.metric("webhooks_queued_total", "Webhook events written to the outbox.", DUET_METRIC_COUNTER)),
      sent(host.metric("webhooks_sent_total", "Webhook events the receiver took (2xx).", DUET_METRIC_COUNTER)),
      failed(host.metric("webhooks_failed_total", "Webhook requests that failed: another status, no answer, a timeout.",
                         DUET_METRIC_COUNTER)),
      retried(host.metric("webhooks_retried_total", "Webhook requests made after the receiver failed.",
                          DUET_METRIC_COUNTER)),
      expired(host.metric("webhooks_expired_total", "Webhook events given up after webhooks.retry-for.",
                          DUET_METRIC_COUNTER)),
      dropped(host.metric("webhooks_dropped_total",
                          "Webhook events lost before they were queued: the outbox was full or could not be written.",
                          DUET_METRIC_COUNTER)),
      outbox_bytes(host.metric("webhooks_outbox_bytes", "The webhook outbox file's size.", DUET_METRIC_GAUGE)),
      pending(host.metric("webhooks_pending", "Webhook events waiting for the receiver.", DUET_METRIC_GAUGE)),
      delay_ms(host.metric("webhooks_delay_milliseconds_total",
                           "Time from an event to the receiver's 2xx, summed over sent events (divide by sent).",
                           DUET_METRIC_COUNTER)) {}

Delivery::Delivery(const duet::Host &host, DeliverySettings settings, duet::http::ClientSettings client,
                   std::unique_ptr<Outbox> outbox)
    : host_(host), settings_(std::move(settings)), metrics_(host), outbox_(std::move(outbox)),
      client_(host, std::move(client)) {
  gauges();
  // Events a previous duetd left are sent once the loop runs.
  if (!outbox_->pending().empty())
    commit_timer_ = host_.start_timer(std::chrono::milliseconds(0), {}, [this] { commit(); });
}

// At exit (a SIGTERM mid-call ends calls, and their events come just
// before): what the commit timer had no turn to sync is synced now.
Delivery::~Delivery() {
  if (!outbox_->sync())
    host_.log(DUET_LOG_ERROR, "the webhook outbox could not be synced to disk at exit: its newest events may be lost");
}

void Delivery::add(const std::string &body) {
  OutboxEvent event;
  event.id = new_event_id();
  event.created_ms = unix_ms();
  event.body = body;
  switch (outbox_->add(event, false)) {
  case Outbox::Added::kOk:
    host_.metric_add(metrics_.queued, 1);
    if (!commit_timer_)
      commit_timer_ = host_.start_timer(std::chrono::milliseconds(0), {}, [this] { commit(); });
    break;
  case Outbox::Added::kFull:
    full("is full (" + std::to_string(outbox_->bytes()) + " bytes; webhooks.outbox-bytes is " +
         std::to_string(outbox_->max_bytes()) + ")");
    break;
  case Outbox::Added::kIoError:
    full("cannot be written (" + std::string(std::strerror(errno)) + ")");
    break;
  }
  gauges();
}

// One fsync for every event of this loop turn, then they may go.
void Delivery::commit() {
  commit_timer_.stop();  // spent (allowed from its own callback)
  if (!outbox_->sync()) {
    host_.log(DUET_LOG_ERROR, "the webhook outbox cannot be synced to disk (" + std::string(std::strerror(errno)) +
                                  "); its events wait until it can, trying every second");
    commit_timer_ = host_.start_timer(std::chrono::seconds(1), {}, [this] { commit(); });
    return;
  }
  kick();
}

void Delivery::kick() {
  if (!outbox_->synced())
    return;
  expire_old();
  if (!backoff_timer_) {
    const std::size_t limit = failures_ > 0 ? 1 : settings_.in_flight;
    for (const OutboxEvent &event : outbox_->pending()) {
      if (sending_.size() >= limit || backoff_timer_)
        break;
      if (!sending_.count(event.id))
        send(event);
    }
  }
  gauges();
}

void Delivery::send(const OutboxEvent &event) {
  const std::int64_t now_s = unix_ms() / 1000;
  const std::string signature = sign(settings_.secret, event.id, now_s, event.body);
  duet::http::Request request;
  request.url = settings_.url;
  request.body = event.body;
  request.timeout = settings_.timeout;
  request.headers = {"Content-Type: application/json", "webhook-id: " + event.id,
                     "webhook-timestamp: " + std::to_string(now_s), "webhook-signature: " + signature};
  if (failures_ > 0)
    host_.metric_add(metrics_.retried, 1);
  const std::string id = event.id;
  const std::int64_t created_ms = event.created_ms;
  sending_.insert(id);
  if (signature.empty() ||
      !client_.start(request, [this, id, created_ms](const duet::http::Response &r) { finished(id, created_ms, r); })) {
    // Nothing went out: a failed attempt, tried again after the backoff
    // (not through finished: kick is walking the outbox).
    sending_.erase(id);
    failed(duet::http::Response{CURLE_OUT_OF_MEMORY, 0, 0, false});
  }
}

void Delivery::finished(const std::string &id, std::int64_t created_ms, const duet::http::Response &response) {
  sending_.erase(id);
  if (response.ok()) {
    outbox_->delivered(id);
    host_.metric_add(metrics_.sent, 1);
    host_.metric_add(metrics_.delay_ms, std::max<std::int64_t>(0, unix_ms() - created_ms));
    if (failures_ > 0)
      host_.log(DUET_LOG_INFO,
                settings_.shown_url + " takes events again; " + std::to_string(outbox_->pending().size()) + " waiting");
    failures_ = 0;
  } else {
    failed(response);
  }
  kick();
}

void Delivery::failed(const duet::http::Response &response) {
  host_.metric_add(metrics_.failed, 1);
  // Requests that were open together fail together: one step of backoff.
  if (backoff_timer_)
    return;
  failures_ = std::min(failures_ + 1, 30);
  const std::chrono::milliseconds delay = std::min<std::chrono::milliseconds>(
      std::chrono::seconds(1LL << std::min(failures_ - 1, 20)), settings_.max_backoff);
  if (failures_ == 1)
    host_.log(DUET_LOG_WARN, settings_.shown_url + " " + what_failed(response) +
                                 "; its events stay in the outbox and are retried (up to every " +
                                 std::to_string(settings_.max_backoff.count() / 1000) + " s)");
  backoff_timer_ = host_.start_timer(delay, {}, [this] {
    backoff_timer_.stop();  // spent (allowed from its own callback)
    kick();
  });
}

// Events past retry_for at the head of the queue are given up.
void Delivery::expire_old() {
  const std::int64_t oldest_kept = unix_ms() - settings_.retry_for.count();
  std::uint64_t given_up = 0;
  std::string last;
  while (!outbox_->pending().empty()) {
    const OutboxEvent &front = outbox_->pending().front();
    if (front.created_ms >= oldest_kept || sending_.count(front.id))
      break;
    last = front.id + " (" + type_of(front.body) + ")";
    outbox_->delivered(front.id);
    given_up++;
  }
  if (given_up == 0)
    return;
  host_.metric_add(metrics_.expired, static_cast<std::int64_t>(given_up));
  host_.log(DUET_LOG_ERROR, "gave up " + std::to_string(given_up) + " event(s), the last " + last +
                                ", after retrying them for " + std::to_string(settings_.retry_for.count() / 1000) +
                                " s (webhooks.retry-for)");
}

void Delivery::full(const std::string &why) {
  host_.metric_add(metrics_.dropped, 1);
  dropped_unlogged_++;
  const Clock::time_point now = Clock::now();
  if (last_full_log_ != Clock::time_point{} && now - last_full_log_ < kLogInterval)
    return;
  last_full_log_ = now;
  host_.log(DUET_LOG_ERROR, "the webhook outbox " + why + ": " + std::to_string(dropped_unlogged_) +
                                " event(s) dropped since the last line; calls keep working. " +
                                std::to_string(outbox_->pending().size()) + " event(s) wait for " +
                                settings_.shown_url + ": bring it back, or raise webhooks.outbox-bytes");
  dropped_unlogged_ = 0;
}

void Delivery::gauges() {
  host_.metric_set(metrics_.outbox_bytes, static_cast<std::int64_t>(outbox_->bytes()));
  host_.metric_set(metrics_.pending, static_cast<std::int64_t>(outbox_->pending().size()));
}

}  // namespace duet::webhooks
