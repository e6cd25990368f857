// "duetd admin list|close|drain": the admin API (core/admin_api.h) from the
// command line, over plain HTTP to --admin-listen (it never leaves the
// machine or the private network it is bound to).
#include "cli/admin_command.hpp"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

#include <rapidjson/document.h>

#include "duet/command.hpp"

namespace duet {

namespace {

const char kUsage[] = "Usage: duetd admin ACTION [--admin ADDRESS:PORT] [--token-file FILE] ...\n"
                      "Asks a running duetd (started with --admin-listen and --admin-token-file) over its admin API.\n"
                      "\n"
                      "Actions:\n"
                      "  list                     the connections (id, since, address, ids) and the calls\n"
                      "  close --id ID [--reason TEXT]\n"
                      "                           close connection ID; its client is told TEXT (closed-by-admin)\n"
                      "  drain                    as SIGUSR1: /healthz says draining, new clients go elsewhere,\n"
                      "                           duetd exits 0 once its connections have gone\n"
                      "\n"
                      "Options:\n"
                      "  --admin ADDRESS:PORT     the --admin-listen address (default 127.0.0.1:9090)\n"
                      "  --token-file FILE        the --admin-token-file (default /etc/duet/admin-token)\n"
                      "  --json                   print the API's JSON answer as it is (give it a value: --json yes)\n";

const CommandOption kOptions[] = {{"--admin", "127.0.0.1:9090"},
                                  {"--token-file", "/etc/duet/admin-token"},
                                  {"--id", nullptr},
                                  {"--reason", nullptr},
                                  {"--json", "no"}};

struct Answer {
  int status = 0;
  std::string body;
};

std::string url_encoded(const std::string &text) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// One request, Connection: close, the whole answer read.
Answer request(const std::string &address, const char *method, const std::string &path, const std::string &token) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos)
    throw UsageError("--admin " + address + ": expected ADDRESS:PORT, e.g. 127.0.0.1:9090");
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo *found = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0 || !found)
    throw EnvironmentError("cannot resolve " + address);
  int fd = -1;
  for (addrinfo *a = found; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0)
    throw EnvironmentError("cannot connect to " + address + ": is duetd running with --admin-listen " + address + "?");
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  const std::string head =
      std::string(method) + " " + path + " HTTP/1.1\r\nHost: " + address + "\r\nAuthorization: Bearer " + token +
      (std::string(method) == "POST" ? "\r\nContent-Length: 0" : "") + "\r\nConnection: close\r\n\r\n";
  std::string raw;
  bool ok = ::send(fd, head.data(), head.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(head.size());
  char buf[16384];
  for (ssize_t n; ok && (n = ::recv(fd, buf, sizeof buf, 0)) > 0;)
    raw.append(buf, static_cast<std::size_t>(n));
  close(fd);
  Answer answer;
  const auto body_at = raw.find("\r\n\r\n");
  if (!ok || raw.compare(0, 9, "HTTP/1.1 ") != 0 || body_at == std::string::npos)
    throw EnvironmentError("no HTTP answer from " + address);
  answer.status = std::atoi(raw.c_str() + 9);
  answer.body = raw.substr(body_at + 4);
  return answer;
}

std::string text(const rapidjson::Value &v, const char *key) {
  const auto m = v.FindMember(key);
  if (m != v.MemberEnd() && m->value.IsString())
    return m->value.GetString();
  if (m != v.MemberEnd() && m->value.IsUint64())
    return std::to_string(m->value.GetUint64());
  return "-";
}

void print_list(const std::string &body, const CommandIo &io) {
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("connections") || !doc["connections"].IsArray())
    throw std::runtime_error("the answer is not a listing: " + body);
  const auto &conns = doc["connections"];
  io.print("node " + text(doc, "node") + ": " + std::to_string(conns.Size()) + " connection(s)\n");
  char line[512];
  std::snprintf(line, sizeof line, "%-20s %-24s %-40s %s\n", "ID", "SINCE", "ADDRESS", "ID -> PEER");
  io.print(line);
  for (const auto &c : conns.GetArray()) {
    // A plugin's member (named after it) that tells the connection's ids.
    std::string ids = "-";
    for (const auto &m : c.GetObject()) {
      const auto &p = m.value;
      if (!p.IsObject() || !p.HasMember("local") || !p.HasMember("remote"))
        continue;
      ids = text(p, "local") + " -> " + text(p, "remote");
      if (p.HasMember("in_call") && p["in_call"].IsBool() && p["in_call"].GetBool())
        ids += " (in a call)";
      break;
    }
    std::snprintf(line, sizeof line, "%-20s %-24s %-40s %s\n", text(c, "id").c_str(), text(c, "since").c_str(),
                  (text(c, "address") + ":" + text(c, "port")).c_str(), ids.c_str());
    io.print(line);
  }
  if (doc.HasMember("calls") && doc["calls"].IsArray()) {
    io.print(std::to_string(doc["calls"].Size()) + " call(s) set up here\n");
    for (const auto &call : doc["calls"].GetArray())
      io.print("  " + text(call, "offerer") + " <-> " + text(call, "answerer") + "\n");
  }
}

int admin_body(const std::string &action, const CommandArgs &args, const CommandIo &io) {
  const std::string token = read_trimmed_file(args.value("--token-file"));
  const bool json = args.value("--json") == "yes";
  Answer answer;
  if (action == "list") {
    answer = request(args.value("--admin"), "GET", "/admin/connections", token);
  } else if (action == "close") {
    const std::string id = args.required("--id", "(from duetd admin list)");
    if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
      throw UsageError("--id " + id + ": a connection id is a number (see duetd admin list)");
    std::string path = "/admin/connections/" + id + "/close";
    if (args.has("--reason"))
      path += "?reason=" + url_encoded(args.value("--reason"));
    answer = request(args.value("--admin"), "POST", path, token);
  } else {
    answer = request(args.value("--admin"), "POST", "/admin/drain", token);
  }
  if (answer.status < 200 || answer.status >= 300) {
    std::string body = answer.body;
    while (!body.empty() && body.back() == '\n')
      body.pop_back();
    io.print_error("admin " + action + ": duetd answered " + std::to_string(answer.status) + ": " + body + "\n");
    return 1;
  }
  if (json || action != "list")
    io.print(answer.body);
  else
    print_list(answer.body, io);
  return 0;
}

int list_body(const CommandArgs &args, const CommandIo &io) { return admin_body("list", args, io); }
int close_body(const CommandArgs &args, const CommandIo &io) { return admin_body("close", args, io); }
int drain_body(const CommandArgs &args, const CommandIo &io) { return admin_body("drain", args, io); }

}  // namespace

int admin_command(int argc, const char *const *argv, duet_write_fn write, void *out, void *err) noexcept {
  const std::string action = argc > 1 ? argv[1] : "";
  const CommandIo io(write, out, err);
  int (*body)(const CommandArgs &, const CommandIo &) = action == "list"    ? &list_body
                                                        : action == "close" ? &close_body
                                                        : action == "drain" ? &drain_body
                                                                            : nullptr;
  if (!body) {
    if (action == "--help" || action == "-h") {
      io.print(kUsage);
      return 0;
    }
    io.print_error(std::string("admin: ") + (action.empty() ? "an action is needed" : "unknown action " + action) +
                   ": list, close or drain\nRun 'duetd admin --help' for its options.\n");
    return 2;
  }
  const CommandSpec spec = {"admin", kUsage, kOptions, sizeof kOptions / sizeof kOptions[0], body};
  return run_command(spec, argc - 1, argv + 1, write, out, err);
}

}  // namespace duet
