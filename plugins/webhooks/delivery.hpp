// Sends the outbox's events to the receiver, at least once each, with a
// stable id: an event leaves the outbox only when the receiver answered 2xx
// (or it was retried for retry_for and given up). When the receiver fails,
// the whole queue waits (1 s, 2 s, 4 s … up to max_backoff) and only the
// oldest event is tried until one gets through: a receiver that is down for
// a day costs one request per max_backoff, not one per event.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>

#include "common/http_client.hpp"
#include "duet/plugin.hpp"
#include "outbox.hpp"

namespace duet::webhooks {

struct DeliverySettings {
  std::string url;
  std::string shown_url;  // url for log lines: no user, password or query
  std::string secret;     // the key's bytes (signature.hpp)
  std::chrono::milliseconds timeout{10000};
  std::chrono::milliseconds retry_for{std::chrono::hours(24)};
  std::chrono::milliseconds max_backoff{std::chrono::minutes(5)};
  std::size_t in_flight = 8;
};

class Delivery {
public:
  Delivery(const duet::Host &host, DeliverySettings settings, duet::http::ClientSettings client,
           std::unique_ptr<Outbox> outbox);
  ~Delivery();
  Delivery(const Delivery &) = delete;
  Delivery &operator=(const Delivery &) = delete;

  // Writes an event to the outbox (made durable before it is sent, with
  // the others of this loop turn in one fsync) and sends it.
  void add(const std::string &body);
  void set_secret(std::string secret) { settings_.secret = std::move(secret); }
  std::size_t pending() const { return outbox_->pending().size(); }

private:
  struct Metrics {
    explicit Metrics(const duet::Host &host);
    std::int64_t queued, sent, failed, retried, expired, dropped, outbox_bytes, pending, delay_ms;
  };

  void commit();
  void kick();
  void send(const OutboxEvent &event);
  void finished(const std::string &id, std::int64_t created_ms, const duet::http::Response &response);
  void failed(const duet::http::Response &response);
  void expire_old();
  void full(const std::string &why);
  void gauges();

  const duet::Host &host_;
  DeliverySettings settings_;
  Metrics metrics_;
  std::unique_ptr<Outbox> outbox_;
  duet::http::Client client_;
  std::unordered_set<std::string> sending_;  // ids of the requests open now
  duet::Timer commit_timer_;
  int failures_ = 0;  // in a row: while > 0, only the oldest event is tried
  duet::Timer backoff_timer_;
  std::chrono::steady_clock::time_point last_full_log_{};
  std::uint64_t dropped_unlogged_ = 0;
};

// "evt_" and 32 random hex digits.
std::string new_event_id();

}  // namespace duet::webhooks
