// The ice-servers plugin: tells each client which STUN/TURN servers to use,
// right after its open, as {"iceServers":[...]} (a message v1 clients
// ignore). With a TURN secret it makes short-lived credentials per client in
// the coturn REST-API form: username "expiry:id", password
// base64(HMAC-SHA1(secret, username)).
#include <chrono>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "duet/plugin.hpp"

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
    duet::option("turn-ttl", "86400", "seconds a TURN credential stays valid (60 to 604800)", "turn-ttl", "SECONDS"),
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

std::string base64(const unsigned char *data, std::size_t len) {
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()), data, static_cast<int>(len));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

class IceServers : public duet::Plugin {
public:
  explicit IceServers(const duet::Host &host) : Plugin(host) {
    static const char *const stun_schemes[] = {"stun:", "stuns:", nullptr};
    static const char *const turn_schemes[] = {"turn:", "turns:", nullptr};
    const duet::Options options = host.options();
    stun_ = split_urls(options, "stun", stun_schemes);
    turn_ = split_urls(options, "turn", turn_schemes);
    secret_ = options.file_contents("turn-secret-file").value_or("");
    if (!options.text("turn-secret-file").empty() && secret_.empty())
      options.fail("turn-secret-file", options.text("turn-secret-file"), "a file holding a secret, not an empty one");
    ttl_s_ = options.integer("turn-ttl", 60, 7 * 86400);
    if (!secret_.empty() && turn_.empty())
      options.fail("turn-secret-file", options.text("turn-secret-file"),
                   "given together with TURN URLs (--turn), which it makes credentials for");
  }

  void on_event(const duet_event_t &event) override {
    // With no servers configured nothing is sent: the default flow stays the
    // tutorial's message for message, and LAN calls need only host candidates.
    if ((stun_.empty() && turn_.empty()) || std::strcmp(event.name, "pairing.open") != 0 || !event.json)
      return;
    rapidjson::Document doc;
    doc.Parse(event.json, event.json_len);
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("local") || !doc["local"].IsString())
      return;
    host().send(event.conn, message_for({doc["local"].GetString(), doc["local"].GetStringLength()}));
  }

private:
  // {"iceServers":[{"urls":[...]},{"urls":[...],"username":..,"credential":..}]}
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
        auto now = std::chrono::system_clock::now().time_since_epoch();
        long long expiry = std::chrono::duration_cast<std::chrono::seconds>(now).count() + ttl_s_;
        std::string username = std::to_string(expiry) + ":" + std::string(id);
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned mac_len = 0;
        HMAC(EVP_sha1(), secret_.data(), static_cast<int>(secret_.size()),
             reinterpret_cast<const unsigned char *>(username.data()), username.size(), mac, &mac_len);
        w.Key("username");
        w.String(username.data(), static_cast<rapidjson::SizeType>(username.size()));
        w.Key("credential");
        std::string credential = base64(mac, mac_len);
        w.String(credential.c_str());
      }
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return {buf.GetString(), buf.GetSize()};
  }

  std::vector<std::string> stun_, turn_;
  std::string secret_;
  std::int64_t ttl_s_ = 86400;
};

}  // namespace

DUET_PLUGIN(ice_servers, IceServers, "ice-servers", "1.0.0",
            "Sends each client its STUN/TURN servers after open, with short-lived TURN credentials", kOptions)
