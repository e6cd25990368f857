// The webhooks plugin: tells the operator's app what happened to calls
// (call.started, call.ended, and with the ring plugin call.missed and
// call.declined) by POSTing signed JSON to --webhook URL, at least once and
// never lost: each event is in the outbox file, fsync'd, before it is sent,
// and leaves it only when the receiver answered 2xx (delivery.hpp).
// Signatures follow the Standard Webhooks convention (signature.hpp), so a
// receiver checks them with that convention's libraries. In a cluster each
// node tells of the calls it set up and ended; with --workers each worker
// has its own outbox.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <curl/curl.h>

#include "address_list.hpp"
#include "common/http_client.hpp"
#include "delivery.hpp"
#include "duet/plugin.hpp"
#include "events.hpp"
#include "outbox.hpp"
#include "signature.hpp"

namespace {

using duet::webhooks::AddressList;
using duet::webhooks::Delivery;
using duet::webhooks::DeliverySettings;
using duet::webhooks::Outbox;

const duet_plugin_option_t kOptions[] = {
    duet::option("url", "",
                 "where events are POSTed: an https: URL, or http: to this machine (127.0.0.1, ::1, localhost); "
                 "empty turns webhooks off",
                 "webhook", "URL"),
    duet::option("secret-file", "",
                 "FILE holding the signing secret, whsec_ and base64 (Standard Webhooks); needed with a URL; "
                 "re-read on SIGHUP",
                 "webhook-secret", "FILE"),
    duet::option("ca-file", "", "trust this CA (PEM) for the receiver instead of the system's (a private receiver)"),
    duet::option("outbox-bytes", "16777216",
                 "the outbox file's limit: events past it are dropped, counted and logged (calls go on)"),
    duet::option("retry-for", "1d", "how long an event is retried before it is given up (like 36h or 7d)"),
    duet::option("max-backoff", "5m", "the longest wait between tries while the receiver fails"),
    duet::option("timeout", "10s", "how long one request may take"),
    duet::option("in-flight", "8", "requests open at once (events may arrive out of order: each has a timestamp)"),
    duet::option("allowed-addresses", "",
                 "addresses or CIDR ranges the URL's host may resolve to (like 10.0.0.0/8,2001:db8::/32); "
                 "a connection anywhere else is refused and its events wait in the outbox. Empty: any "
                 "(http: loopback only, always)"),
    {},
};

bool loopback_name(std::string host) {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host == "localhost")
    return true;
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127;
  return inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

bool loopback_address(const sockaddr *address) {
  if (address->sa_family == AF_INET)
    return (ntohl(reinterpret_cast<const sockaddr_in *>(address)->sin_addr.s_addr) >> 24) == 127;
  return address->sa_family == AF_INET6 &&
         IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6 *>(address)->sin6_addr);
}

// The URL for log lines: scheme, host, port and path, never a user, a
// password or a query (which may hold a token).
std::string redacted(const std::string &url) {
  CURLU *parsed = curl_url();
  std::string out = "(the webhook URL)";
  if (parsed && curl_url_set(parsed, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    curl_url_set(parsed, CURLUPART_USER, nullptr, 0);
    curl_url_set(parsed, CURLUPART_PASSWORD, nullptr, 0);
    curl_url_set(parsed, CURLUPART_QUERY, nullptr, 0);
    curl_url_set(parsed, CURLUPART_FRAGMENT, nullptr, 0);
    char *text = nullptr;
    if (curl_url_get(parsed, CURLUPART_URL, &text, 0) == CURLUE_OK)
      out = text;
    curl_free(text);
  }
  curl_url_cleanup(parsed);
  return out;
}

// The URL's scheme ("https" or "http"); OptionError for any other URL.
std::string checked_scheme(const duet::Options &options, const std::string &url) {
  CURLU *parsed = curl_url();
  if (!parsed)
    throw duet::EnvironmentError("libcurl could not parse a URL (no memory)");
  char *scheme = nullptr;
  char *host = nullptr;
  const bool ok = curl_url_set(parsed, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK &&
                  curl_url_get(parsed, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
                  curl_url_get(parsed, CURLUPART_HOST, &host, 0) == CURLUE_OK;
  std::string s = ok ? scheme : "";
  const std::string h = ok ? host : "";
  curl_free(scheme);
  curl_free(host);
  curl_url_cleanup(parsed);
  if (!ok || (s != "https" && s != "http"))
    options.fail("url", url, "an https: URL (or http: to 127.0.0.1, ::1 or localhost)");
  if (s == "http" && !loopback_name(h))
    options.fail("url", url,
                 "an https: URL: http: is only for a receiver on this machine (127.0.0.1, ::1 or localhost), since "
                 "events would cross the network unencrypted");
  return s;
}

std::string read_secret(const duet::Options &options) {
  const std::optional<std::string> text = options.file_contents("secret-file");
  if (!text)
    options.refuse("secret-file", "--webhook needs --webhook-secret FILE, the secret receivers check signatures with");
  const std::optional<std::string> secret = duet::webhooks::secret_bytes(*text);
  if (!secret)
    options.fail(
        "secret-file", options.text("secret-file"),
        "a file holding whsec_ and the base64 of at least 24 random bytes (make one with: echo whsec_$(openssl "
        "rand -base64 32))");
  return *secret;
}

// This process's outbox, and the outboxes no running worker owns any more
// (duetd was started before with more workers) that this one takes over.
struct OutboxFiles {
  std::string own;
  std::vector<std::string> orphans;
};

OutboxFiles outbox_files(const std::string &folder, std::uint32_t worker, std::uint32_t workers) {
  OutboxFiles files;
  files.own = folder + (worker == 0 ? "/outbox.jsonl" : "/outbox-w" + std::to_string(worker) + ".jsonl");
  DIR *dir = opendir(folder.c_str());
  if (!dir)
    return files;
  while (const dirent *entry = readdir(dir)) {
    const std::string name = entry->d_name;
    unsigned long other = 0;
    if (name == "outbox.jsonl")
      other = 0;
    else if (name.size() > 14 && name.compare(0, 8, "outbox-w") == 0 &&
             name.compare(name.size() - 6, 6, ".jsonl") == 0 &&
             name.find_first_not_of("0123456789", 8) == name.size() - 6)
      other = std::stoul(name.substr(8, name.size() - 14));
    else
      continue;
    // Single process: every worker's file. Worker K of N: worker files
    // numbered above N that fall to K, and the single process's to worker 1.
    const bool mine =
        worker == 0 ? other != 0 : (other == 0 ? worker == 1 : other > workers && (other - 1) % workers + 1 == worker);
    if (mine) {
      std::string path = folder;
      path += '/';
      path += name;
      files.orphans.push_back(std::move(path));
    }
  }
  closedir(dir);
  return files;
}

class Webhooks : public duet::Plugin {
public:
  static constexpr duet_stage_t kStage = DUET_STAGE_OBSERVER;

  explicit Webhooks(const duet::Host &host) : Plugin(host) {
    const duet::Options &options = host.options();
    DeliverySettings settings;
    settings.url = options.text("url");
    // Read even when off, so a bad value is an error whatever the URL.
    const auto outbox_bytes = static_cast<std::size_t>(options.integer("outbox-bytes", 4096, std::int64_t{1} << 40));
    settings.retry_for = options.duration("retry-for", std::chrono::minutes(1), std::chrono::hours(24 * 365));
    settings.max_backoff = options.duration("max-backoff", std::chrono::milliseconds(100), std::chrono::hours(24));
    settings.timeout = options.duration("timeout", std::chrono::milliseconds(100), std::chrono::minutes(10));
    settings.in_flight = static_cast<std::size_t>(options.integer("in-flight", 1, 256));
    std::string why;
    auto allowed = AddressList::parse(options.text("allowed-addresses"), why);
    if (!allowed)
      options.refuse("allowed-addresses", "the webhooks' allowed addresses: " + why);
    if (settings.url.empty()) {
      if (!options.text("secret-file").empty())
        options.refuse("secret-file", "--webhook-secret needs --webhook URL");
      return;
    }
    const std::string scheme = checked_scheme(options, settings.url);
    settings.secret = read_secret(options);

    const auto node = host.node_info();
    if (!node)
      throw duet::EnvironmentError("webhooks need a duetd of ABI 1.5 or later (for the state folder)");
    node_ = node->node_id;
    const std::string folder = std::string(node->state_dir) + "/webhooks";
    if (mkdir(node->state_dir, 0700) != 0 && errno != EEXIST)
      throw duet::EnvironmentError("cannot make the state folder " + std::string(node->state_dir) + ": " +
                                   std::strerror(errno));
    if (mkdir(folder.c_str(), 0700) != 0 && errno != EEXIST)
      throw duet::EnvironmentError("cannot make " + folder + ": " + std::strerror(errno));
    const OutboxFiles files = outbox_files(folder, node->worker_index, node->worker_count);
    std::string error;
    std::unique_ptr<Outbox> outbox = Outbox::open(files.own, outbox_bytes, error);
    if (!outbox)
      throw duet::EnvironmentError("webhooks: " + error);
    for (const std::string &orphan : files.orphans)
      adopt(*outbox, orphan);

    duet::http::ClientSettings client;
    client.user_agent = "duetd-webhooks";
    client.protocols = scheme == "https" ? "https" : "http";
    client.ca_file = options.text("ca-file");
    // As many connections as requests in flight: an HTTP/1.1 receiver takes one request per connection.
    client.max_host_connections = static_cast<long>(settings.in_flight);
    client.max_connects = std::max<long>(client.max_connects, client.max_host_connections);
    // Unencrypted only on this machine, whatever the name resolves to.
    const bool plain = scheme == "http";
    if (plain || !allowed->empty())
      client.address_allowed = [plain, list = *allowed](const sockaddr *address) {
        return (!plain || loopback_address(address)) && (list.empty() || list.contains(address));
      };
    const std::size_t waiting = outbox->pending().size();
    settings.shown_url = redacted(settings.url);
    delivery_ = std::make_unique<Delivery>(host, std::move(settings), std::move(client), std::move(outbox));
    host.log(DUET_LOG_INFO, "sending to " + redacted(options.text("url")) + " (" + std::to_string(waiting) +
                                " events waiting in the outbox " + files.own + ")");
  }

  void on_event(const duet_event_t &event) override {
    if (!delivery_ || !event.name)
      return;
    const std::string_view name = event.name;
    if (name == "duet.reload") {
      reload_secret();
      return;
    }
    const std::string_view json = event.json ? std::string_view(event.json, event.json_len) : std::string_view();
    if (auto body = duet::webhooks::webhook_body(name, json, node_, unix_ms()))
      delivery_->add(*body);
  }

private:
  static std::int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  // An outbox left by a worker that no longer runs: its events move to
  // ours (durably), then its file goes.
  void adopt(Outbox &into, const std::string &path) {
    std::string error;
    std::unique_ptr<Outbox> orphan = Outbox::open(path, std::size_t{1} << 40, error);
    if (!orphan) {
      host().log(DUET_LOG_WARN, "cannot take over " + path + ": " + error);
      return;
    }
    std::size_t moved = 0;
    for (const auto &event : orphan->pending())
      if (into.add(event, false) == Outbox::Added::kOk)
        moved++;
    if (moved != orphan->pending().size() || !into.sync()) {
      host().log(DUET_LOG_WARN, path + " could not be taken over whole (the outbox is full or "
                                       "cannot be written); it stays for the next start");
      return;
    }
    ::unlink(path.c_str());
    ::unlink((path + ".lock").c_str());
    host().log(DUET_LOG_INFO, "took over " + std::to_string(moved) + " event(s) from " + path);
  }

  void reload_secret() {
    try {
      delivery_->set_secret(read_secret(host().options()));
      host().log(DUET_LOG_INFO, "re-read the signing secret");
    } catch (const std::exception &e) {
      host().log(DUET_LOG_ERROR, std::string("kept the old signing secret: ") + e.what());
    }
  }

  duet::http::CurlLibrary curl_;
  std::string node_;
  std::unique_ptr<Delivery> delivery_;
};

}  // namespace

DUET_PLUGIN(webhooks, Webhooks, "webhooks", "1.0.0",
            "POSTs call.started, call.ended, call.missed and call.declined to your app, signed (Standard Webhooks), "
            "from an outbox that survives restarts",
            kOptions)
