// The ice-servers plugin: tells each client which STUN/TURN servers to use,
// right after its open, as {"iceServers":[...]} (a message v1 clients
// ignore), with "iceTransportPolicy":"relay" when calls must go through the
// relay. With a TURN secret it makes short-lived credentials per client in
// the coturn REST-API form (turn_credentials.hpp) and sends fresh ones
// before they expire, and again when SIGHUP brings a new secret.
//
// Why refresh: coturn checks the username's expiry when it authenticates an
// Allocate, but keeps refreshing an allocation made in time after that
// expiry (tests/integration/test_turn_server.py pins both for coturn 4.6),
// so a running call outlives its credentials. An ICE restart in a long call
// (a phone moving from Wi-Fi to mobile data) makes new allocations, though,
// and with expired credentials they would be refused: the web client hands
// the fresh ones to its RTCPeerConnection (setConfiguration) for that.
#include <chrono>
#include <cstring>
#include <exception>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "duet/command.hpp"
#include "duet/plugin.hpp"
#include "turn_command.hpp"
#include "turn_credentials.hpp"

namespace {

const duet_plugin_option_t kOptions[] = {
    duet::option("stun", "", "STUN server URLs for the clients, comma-separated, e.g. stun:stun.example.org:3478",
                 "stun", "URL", DUET_OPTION_REPEATABLE),
    duet::option("turn", "", "TURN server URLs for the clients, comma-separated, e.g. turn:turn.example.org:3478",
                 "turn", "URL", DUET_OPTION_REPEATABLE),
    duet::option("turn-secret-file", "",
                 "FILE holding the TURN REST-API secret (coturn's static-auth-secret): each client gets its own "
                 "short-lived credentials",
                 "turn-secret", "FILE", DUET_OPTION_FILE),
    duet::option("turn-ttl", "86400",
                 "seconds a TURN credential stays valid (10 to 604800); clients get fresh ones before it ends",
                 "turn-ttl", "SECONDS"),
    duet::option("ice-transport-policy", "all",
                 "'relay' makes every client use only relayed (TURN) candidates, so the partner never learns its "
                 "address; needs --turn. 'all' also allows direct paths",
                 "ice-transport-policy", "all|relay"),
    {},
};

// The comma-separated URLs of option key, each starting with one of schemes.
std::vector<std::string> split_urls(const duet::Options &options, const char *key, const char *const *schemes) {
  std::vector<std::string> urls;
  std::string item;
  std::istringstream in{options.text(key)};
  while (std::getline(in, item, ',')) {
    if (item.empty())
      continue;
    bool ok = false;
    for (const char *const *s = schemes; *s; s++)
      ok |= item.rfind(*s, 0) == 0 && item.size() > std::strlen(*s);
    for (unsigned char c : item)
      ok &= c > 0x20 && c < 0x7f && c != '"' && c != '\\';
    if (!ok)
      options.fail(key, item,
                   std::string("URLs starting with ") + schemes[0] + " or " + schemes[1] +
                       ", without spaces or quotes");
    urls.push_back(item);
  }
  return urls;
}

class IceServers : public duet::Plugin {
public:
  static constexpr duet_stage_t kStage = DUET_STAGE_OBSERVER;
  explicit IceServers(const duet::Host &host) : Plugin(host) {
    static const char *const stun_schemes[] = {"stun:", "stuns:", nullptr};
    static const char *const turn_schemes[] = {"turn:", "turns:", nullptr};
    const duet::Options options = host.options();
    stun_ = split_urls(options, "stun", stun_schemes);
    turn_ = split_urls(options, "turn", turn_schemes);
    secret_path_ = options.text("turn-secret-file");
    secret_ = options.file_contents("turn-secret-file").value_or("");
    if (!secret_path_.empty() && secret_.empty())
      options.fail("turn-secret-file", secret_path_, "a file holding a secret, not an empty one");
    // Below 10 s a credential could expire between the message and the
    // browser's first Allocate.
    ttl_s_ = options.integer("turn-ttl", 10, 7 * 86400);
    if (!secret_.empty() && turn_.empty())
      options.fail("turn-secret-file", secret_path_,
                   "given together with TURN URLs (--turn), which it makes credentials for");
    // Browsers refuse a TURN server without a username and credential
    // (RTCPeerConnection throws), so such a list would break every call.
    if (secret_.empty() && !turn_.empty())
      options.fail("turn", turn_.front(),
                   "given together with --turn-secret FILE (the TURN server's static-auth-secret): "
                   "browsers refuse a TURN server without credentials");
    relay_only_ = options.one_of<bool>("ice-transport-policy", {{"all", false}, {"relay", true}});
    if (relay_only_ && turn_.empty())
      options.fail("ice-transport-policy", "relay",
                   "'all' when no TURN server is given: relay-only calls need one (--turn URL, usually with "
                   "--turn-secret FILE)");
  }

  void on_event(const duet_event_t &event) override {
    if (std::strcmp(event.name, "duet.reload") == 0) {
      reload_secret();
      return;
    }
    // With no servers configured nothing is sent: the default flow stays the
    // tutorial's message for message, and LAN calls need only host candidates.
    if ((stun_.empty() && turn_.empty()) || std::strcmp(event.name, "pairing.open") != 0 || !event.json)
      return;
    rapidjson::Document doc;
    doc.Parse(event.json, event.json_len);
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("local") || !doc["local"].IsString())
      return;
    const duet::ConnId conn = event.conn;
    std::string id(doc["local"].GetString(), doc["local"].GetStringLength());
    host().send(conn, message_for(id));
    if (secret_.empty())
      return;
    // Fresh credentials when a quarter of the TTL is left: room for a
    // client that is slow to take them, and at most 4/3 messages per TTL.
    const std::chrono::milliseconds every(ttl_s_ * 750);
    Client &client = clients_[conn];
    client.id = std::move(id);
    client.refresh = host().start_timer(every, every, [this, conn] {
      auto it = clients_.find(conn);
      if (it != clients_.end())
        host().send(conn, message_for(it->second.id));
    });
  }

  void on_close(duet::ConnId conn, duet_close_reason_t) override { clients_.erase(conn); }

private:
  struct Client {
    std::string id;
    duet::Timer refresh;
  };

  // SIGHUP re-reads the secret (rotated by hand, like the certificate). A
  // file that cannot be read or is empty keeps the secret in use: calls go
  // on rather than fail for a half-written file.
  void reload_secret() {
    if (secret_path_.empty())
      return;
    std::string fresh;
    try {
      fresh = duet::read_trimmed_file(secret_path_);
    } catch (const std::exception &e) {
      host().log(DUET_LOG_WARN, std::string("kept the TURN secret in use: ") + e.what());
      return;
    }
    if (fresh.empty()) {
      host().log(DUET_LOG_WARN, "kept the TURN secret in use: " + secret_path_ + " is empty");
      return;
    }
    if (fresh == secret_) {
      host().log(DUET_LOG_INFO, "TURN secret unchanged (" + secret_path_ + ")");
      return;
    }
    secret_ = std::move(fresh);
    host().log(DUET_LOG_INFO, "new TURN secret from " + secret_path_ + ": sending fresh credentials to " +
                                  std::to_string(clients_.size()) + " client(s)");
    // The TURN server got the same new secret: what the clients hold will
    // not make new allocations any more.
    for (const auto &[conn, client] : clients_)
      host().send(conn, message_for(client.id));
  }

  // {"iceServers":[{"urls":[...]},{"urls":[...],"username":..,"credential":..}]},
  // plus "iceTransportPolicy":"relay" in relay-only mode.
  std::string message_for(std::string_view id) const {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    w.Key("iceServers");
    w.StartArray();
    if (!stun_.empty()) {
      w.StartObject();
      w.Key("urls");
      w.StartArray();
      for (const auto &u : stun_)
        w.String(u.c_str());
      w.EndArray();
      w.EndObject();
    }
    if (!turn_.empty()) {
      w.StartObject();
      w.Key("urls");
      w.StartArray();
      for (const auto &u : turn_)
        w.String(u.c_str());
      w.EndArray();
      if (!secret_.empty()) {
        const duet::ice::TurnCredentials c = duet::ice::turn_credentials(secret_, id, duet::ice::unix_now_s() + ttl_s_);
        w.Key("username");
        w.String(c.username.data(), static_cast<rapidjson::SizeType>(c.username.size()));
        w.Key("credential");
        w.String(c.password.data(), static_cast<rapidjson::SizeType>(c.password.size()));
      }
      w.EndObject();
    }
    w.EndArray();
    if (relay_only_) {
      w.Key("iceTransportPolicy");
      w.String("relay");
    }
    w.EndObject();
    return {buf.GetString(), buf.GetSize()};
  }

  std::vector<std::string> stun_, turn_;
  std::string secret_path_, secret_;
  std::int64_t ttl_s_ = 86400;
  bool relay_only_ = false;
  std::unordered_map<duet::ConnId, Client> clients_;
};

}  // namespace

const duet_plugin_command_t kTurnCredentials =
    duet::command("turn-credentials",
                  "Print TURN credentials for --turn-secret FILE and how to check a TURN server with them, then exit",
                  &duet::ice::turn_credentials_command);
const duet_plugin_command_t *const kCommands[] = {&kTurnCredentials, nullptr};

DUET_PLUGIN_WITH_COMMANDS(ice_servers, IceServers, "ice-servers", "1.1.0",
                          "Sends each client its STUN/TURN servers after open, with short-lived TURN credentials",
                          kOptions, kCommands)
