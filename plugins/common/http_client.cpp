#include "http_client.hpp"

#include <utility>

namespace duet::http {

namespace {
size_t discard(char *, size_t size, size_t count, void *) { return size * count; }
}  // namespace

// A request on its way: what libcurl reads from must live as long as it.
struct Client::InFlight {
  Client *client = nullptr;
  std::string url, body;
  curl_slist *headers = nullptr;
  Done done;
  bool refused = false;  // an address failed the check at connect time
  ~InFlight() { curl_slist_free_all(headers); }
};

Client::Client(const duet::Host &host, ClientSettings settings)
    : host_(host), settings_(std::move(settings)), multi_(curl_multi_init()) {
  if (!multi_)
    throw duet::EnvironmentError("libcurl could not make a multi handle");
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Client::on_socket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Client::on_timer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, settings_.max_host_connections);
  // Kept connections: libcurl's default follows the transfers added now,
  // which shrinks between bursts and would cost a TLS handshake per burst.
  curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, settings_.max_connects);
}

Client::~Client() {
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

bool Client::start(const Request &request, Done done) {
  CURL *easy = curl_easy_init();
  if (!easy)
    return false;
  auto open = std::make_unique<InFlight>();
  open->client = this;
  open->url = request.url;
  open->body = request.body;
  open->done = std::move(done);
  for (const std::string &h : request.headers)
    open->headers = curl_slist_append(open->headers, h.c_str());
  open->headers = curl_slist_append(open->headers, "Expect:");  // no 100-continue round trip
  curl_easy_setopt(easy, CURLOPT_URL, open->url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, settings_.protocols);
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_POST, 1L);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, open->body.data());
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(open->body.size()));
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, open->headers);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, settings_.user_agent);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &discard);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, open.get());
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, &Client::open_socket);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, open.get());
  if (!settings_.ca_file.empty())
    curl_easy_setopt(easy, CURLOPT_CAINFO, settings_.ca_file.c_str());
  if (curl_multi_add_handle(multi_, easy) != CURLM_OK) {
    curl_easy_cleanup(easy);
    return false;
  }
  in_flight_.emplace(easy, std::move(open));
  return true;
}

// Every address libcurl is about to connect to passes here first.
curl_socket_t Client::open_socket(void *data, curlsocktype, struct curl_sockaddr *address) {
  auto *request = static_cast<InFlight *>(data);
  const auto &allowed = request->client->settings_.address_allowed;
  if (allowed && !allowed(&address->addr)) {
    request->refused = true;
    return CURL_SOCKET_BAD;
  }
  return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

void Client::finished(CURL *easy, CURLcode result) {
  auto it = in_flight_.find(easy);
  if (it == in_flight_.end())
    return;
  std::unique_ptr<InFlight> request = std::move(it->second);
  in_flight_.erase(it);
  Response response;
  response.result = result;
  curl_off_t retry_after = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &response.status);
  curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &retry_after);
  response.retry_after_s = retry_after;
  // Refused only if no address was left to try (a name may have allowed
  // addresses beside refused ones).
  response.refused = result != CURLE_OK && request->refused;
  curl_multi_remove_handle(multi_, easy);
  curl_easy_cleanup(easy);
  request->done(response);  // may start more requests
}

void Client::socket_action(int fd, int flags) {
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
}

int Client::on_socket(CURL *, curl_socket_t fd, int what, void *data, void *) {
  auto *self = static_cast<Client *>(data);
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
  socket->watch = self->host_.fd_watch(fd, events, &Client::on_ready, socket.get());
  if (socket->watch <= 0)
    return -1;  // libcurl fails this transfer
  self->sockets_.emplace(fd, std::move(socket));
  return 0;
}

int Client::on_timer(CURLM *, long timeout_ms, void *data) {
  auto *self = static_cast<Client *>(data);
  if (timeout_ms < 0) {
    self->curl_timer_.stop();
    return 0;
  }
  self->curl_timer_ = self->host_.start_timer(std::chrono::milliseconds(timeout_ms), {},
                                              [self] { self->socket_action(CURL_SOCKET_TIMEOUT, 0); });
  return 0;
}

void Client::on_ready(void *data, std::uint32_t ready) {
  auto *socket = static_cast<Socket *>(data);
  const int flags = (ready & DUET_FD_READ ? CURL_CSELECT_IN : 0) | (ready & DUET_FD_WRITE ? CURL_CSELECT_OUT : 0) |
                    (ready & DUET_FD_ERROR ? CURL_CSELECT_ERR : 0);
  socket->client->socket_action(socket->fd, flags);  // may free socket
}

}  // namespace duet::http
