#include "push_sender.hpp"

#include <algorithm>
#include <utility>

#include <sys/socket.h>

#include "context.hpp"
#include "push_endpoint.hpp"

namespace duet::ring {

namespace {

// A VAPID JWT lives 12 hours (the limit is 24) and is made anew an hour
// before it ends: one signature per push service per 11 hours.
constexpr std::int64_t kJwtLifeS = 12 * 3600;
constexpr std::int64_t kJwtRenewMs = 11 * 3600 * 1000LL;

size_t discard(char *, size_t size, size_t count, void *) { return size * count; }

}  // namespace

// A request on its way: what it sends must live as long as it.
struct PushSender::InFlight {
  Push push;
  curl_slist *headers = nullptr;
  bool refused = false;  // an address failed the check at connect time
  PushSender *sender = nullptr;
  ~InFlight() { curl_slist_free_all(headers); }
};

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

PushSender::PushSender(const duet::Host &host, const VapidKey &key, PushSettings settings,
                       std::function<void(const std::string &, const std::string &)> gone)
    : host_(host), key_(key), settings_(std::move(settings)), gone_(std::move(gone)), metrics_(host),
      multi_(curl_multi_init()) {
  if (!multi_)
    throw duet::EnvironmentError("libcurl could not make a multi handle");
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &PushSender::on_socket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &PushSender::on_timer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, 8L);
  // Kept connections: libcurl's default follows the transfers added now,
  // which shrinks between rings and would cost a TLS handshake per ring.
  curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, 32L);
}

PushSender::~PushSender() {
  for (auto &[easy, request] : in_flight_) {
    curl_multi_remove_handle(multi_, easy);
    curl_easy_cleanup(easy);
  }
  in_flight_.clear();
  // The watches go before libcurl closes the sockets they watch.
  for (auto &[fd, socket] : sockets_)
    host_.fd_watch_stop(socket->watch);
  sockets_.clear();
  curl_multi_cleanup(multi_);
}

void PushSender::send(Push push) {
  if (queue_.size() >= settings_.max_queued) {
    host_.metric_add(metrics_.dropped, 1);
    return;
  }
  queue_.push_back(std::move(push));
  start_queued();
}

void PushSender::start_queued() {
  while (!queue_.empty() && in_flight_.size() < settings_.max_in_flight) {
    Push push = std::move(queue_.front());
    queue_.pop_front();
    start(std::move(push));
  }
  host_.metric_set(metrics_.in_flight, static_cast<std::int64_t>(in_flight_.size()));
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
  CURL *easy = curl_easy_init();
  if (!easy) {
    host_.metric_add(metrics_.dropped, 1);
    return;
  }
  auto request = std::make_unique<InFlight>();
  request->sender = this;
  request->push = std::move(push);
  request->push.attempt++;
  const Push &p = request->push;
  const std::int64_t ttl_s = std::max<std::int64_t>(0, (p.expires_ms - now) / 1000);
  for (const std::string &h :
       {std::string("Content-Encoding: aes128gcm"), std::string("Content-Type: application/octet-stream"),
        "TTL: " + std::to_string(ttl_s), "Urgency: " + p.urgency, "Topic: " + p.topic, authorization(p.origin),
        std::string("Expect:")})
    request->headers = curl_slist_append(request->headers, h.c_str());
  curl_easy_setopt(easy, CURLOPT_URL, p.endpoint.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_POST, 1L);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, p.body.data());
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(p.body.size()));
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, request->headers);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, "duetd-ring");
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(settings_.timeout.count()));
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &discard);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, request.get());
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, &PushSender::open_socket);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, request.get());
  if (!settings_.ca_file.empty())
    curl_easy_setopt(easy, CURLOPT_CAINFO, settings_.ca_file.c_str());
  if (curl_multi_add_handle(multi_, easy) != CURLM_OK) {
    curl_easy_cleanup(easy);
    host_.metric_add(metrics_.dropped, 1);
    return;
  }
  in_flight_.emplace(easy, std::move(request));
}

// Every address libcurl is about to connect to passes here first.
curl_socket_t PushSender::open_socket(void *data, curlsocktype, struct curl_sockaddr *address) {
  auto *request = static_cast<InFlight *>(data);
  if (!request->sender->settings_.allow_private && !public_address(&address->addr)) {
    request->refused = true;
    return CURL_SOCKET_BAD;
  }
  return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

void PushSender::finished(CURL *easy, int result) {
  auto it = in_flight_.find(easy);
  if (it == in_flight_.end())
    return;
  std::unique_ptr<InFlight> request = std::move(it->second);
  in_flight_.erase(it);
  long status = 0;
  curl_off_t retry_after = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &retry_after);
  curl_multi_remove_handle(multi_, easy);
  curl_easy_cleanup(easy);
  Push &push = request->push;

  // Refused only if no address was left to try (a name may have public
  // addresses beside refused ones).
  if (result != CURLE_OK && request->refused) {
    host_.metric_add(metrics_.refused, 1);
    return;
  }
  if (result == CURLE_OK && status >= 200 && status < 300) {
    host_.metric_add(metrics_.sent, 1);
    host_.metric_add(metrics_.latency_ms, now_ms() - push.queued_ms);
    return;
  }
  if (result == CURLE_OK && (status == 404 || status == 410)) {
    host_.metric_add(metrics_.gone, 1);
    gone_(push.device, push.endpoint);
    return;
  }
  if (result == CURLE_OK && status != 429 && status < 500) {
    host_.metric_add(metrics_.rejected, 1);
    return;
  }
  // 429, 5xx, a timeout or a network failure: worth another try.
  if (result == CURLE_OK)
    host_.metric_add(status == 429 ? metrics_.throttled : metrics_.server_error, 1);
  else
    host_.metric_add(result == CURLE_OPERATION_TIMEDOUT ? metrics_.timeout : metrics_.network_error, 1);
  std::chrono::milliseconds delay = std::chrono::seconds(1 << (push.attempt - 1));
  if (retry_after > 0)
    delay = std::min<std::chrono::milliseconds>(std::chrono::seconds(retry_after), kMaxRetryAfter);
  retry(std::move(push), delay);
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

void PushSender::socket_action(int fd, int flags) {
  int running = 0;
  curl_multi_socket_action(multi_, fd, flags, &running);
  while (true) {
    int left = 0;
    CURLMsg *msg = curl_multi_info_read(multi_, &left);
    if (!msg)
      break;
    if (msg->msg == CURLMSG_DONE)
      finished(msg->easy_handle, msg->data.result);
  }
  start_queued();
}

int PushSender::on_socket(CURL *, curl_socket_t fd, int what, void *data, void *) {
  auto *self = static_cast<PushSender *>(data);
  auto it = self->sockets_.find(fd);
  if (what == CURL_POLL_REMOVE) {
    if (it != self->sockets_.end()) {
      self->host_.fd_watch_stop(it->second->watch);
      self->sockets_.erase(it);
    }
    return 0;
  }
  const std::uint32_t events = (what & CURL_POLL_IN ? DUET_FD_READ : 0u) | (what & CURL_POLL_OUT ? DUET_FD_WRITE : 0u);
  if (it != self->sockets_.end()) {
    self->host_.fd_watch_set(it->second->watch, events);
    return 0;
  }
  auto socket = std::make_unique<Socket>(Socket{self, fd, 0});
  socket->watch = self->host_.fd_watch(fd, events, &PushSender::on_ready, socket.get());
  if (socket->watch <= 0)
    return -1;  // libcurl fails this transfer
  self->sockets_.emplace(fd, std::move(socket));
  return 0;
}

int PushSender::on_timer(CURLM *, long timeout_ms, void *data) {
  auto *self = static_cast<PushSender *>(data);
  if (timeout_ms < 0) {
    self->curl_timer_.stop();
    return 0;
  }
  self->curl_timer_ = self->host_.start_timer(std::chrono::milliseconds(timeout_ms), {},
                                              [self] { self->socket_action(CURL_SOCKET_TIMEOUT, 0); });
  return 0;
}

void PushSender::on_ready(void *data, std::uint32_t ready) {
  auto *socket = static_cast<Socket *>(data);
  const int flags = (ready & DUET_FD_READ ? CURL_CSELECT_IN : 0) | (ready & DUET_FD_WRITE ? CURL_CSELECT_OUT : 0) |
                    (ready & DUET_FD_ERROR ? CURL_CSELECT_ERR : 0);
  socket->sender->socket_action(socket->fd, flags);  // may free socket
}

}  // namespace duet::ring
