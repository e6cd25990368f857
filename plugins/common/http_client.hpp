// Outgoing HTTP requests on duetd's own loop, never blocking it: libcurl's
// multi interface, its sockets watched and its timeouts timed by duetd (host
// fd_watch and timers). libcurl because it is the HTTP client every
// distribution keeps patched, speaks HTTP/2 and lets us vet each address
// before it connects. Redirects are never followed. The ring plugin's Web
// Push and the webhooks plugin send through it; what to retry, and when, is
// theirs.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <curl/curl.h>
#include <sys/socket.h>

#include "duet/plugin.hpp"

namespace duet::http {

// libcurl's global state, set up while a plugin that uses it lives (libcurl
// counts the calls: two plugins may each hold one).
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

struct ClientSettings {
  const char *user_agent = "duetd";
  const char *protocols = "https";  // CURLOPT_PROTOCOLS_STR: "https", or "http,https"
  std::string ca_file;              // trust this CA (PEM) instead of the system's; empty: the system's
  // Asked for every address before a connection to it is made; null allows all.
  std::function<bool(const sockaddr *)> address_allowed;
  long max_host_connections = 8;
  long max_connects = 32;  // connections kept open between requests
};

struct Request {
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;                  // POSTed
  std::chrono::milliseconds timeout{10000};
};

struct Response {
  CURLcode result = CURLE_OK;      // CURLE_OK: an answer came (status holds it)
  long status = 0;                 // the HTTP status
  std::int64_t retry_after_s = 0;  // Retry-After, in seconds (0: none)
  bool refused = false;            // no address was left that address_allowed accepted
  bool answered() const { return result == CURLE_OK; }
  bool ok() const { return answered() && status >= 200 && status < 300; }
  bool timed_out() const { return result == CURLE_OPERATION_TIMEDOUT; }
};

class Client {
public:
  Client(const duet::Host &host, ClientSettings settings);
  ~Client();  // requests still open end without their callbacks
  Client(const Client &) = delete;
  Client &operator=(const Client &) = delete;

  using Done = std::function<void(const Response &)>;
  // Starts request; done is called once, from duetd's loop, when it ends.
  // false (and done never called) when libcurl could not take it.
  bool start(const Request &request, Done done);
  std::size_t in_flight() const { return in_flight_.size(); }

private:
  struct InFlight;
  struct Socket {
    Client *client;
    int fd;
    std::int64_t watch;
  };

  void finished(CURL *easy, CURLcode result);
  void socket_action(int fd, int flags);
  static curl_socket_t open_socket(void *request, curlsocktype purpose, struct curl_sockaddr *address);
  static int on_socket(CURL *easy, curl_socket_t fd, int what, void *client, void *socket);
  static int on_timer(CURLM *multi, long timeout_ms, void *client);
  static void on_ready(void *socket, std::uint32_t ready);

  const duet::Host &host_;
  ClientSettings settings_;
  CURLM *multi_ = nullptr;
  duet::Timer curl_timer_;
  std::unordered_map<int, std::unique_ptr<Socket>> sockets_;
  std::unordered_map<CURL *, std::unique_ptr<InFlight>> in_flight_;
};

}  // namespace duet::http
