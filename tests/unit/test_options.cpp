// The command line: defaults, values reaching the C options, usage errors.
#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "cli/options.hpp"

namespace {
struct Run {
  int code;
  std::string out, err;
};

Run parse(std::vector<std::string> args, duet::CliOptions &o) {
  args.insert(args.begin(), "duetd");
  std::vector<const char *> argv;
  for (auto &a : args)
    argv.push_back(a.c_str());
  std::ostringstream out, err;
  int code = duet::parse_command_line(static_cast<int>(argv.size()), argv.data(), o, out, err);
  return {code, out.str(), err.str()};
}
}  // namespace

TEST_CASE("no options means TLS on port 8443 with the bundled plugins") {
  duet::CliOptions o;
  REQUIRE(parse({}, o).code == -1);
  CHECK(o.c.port == 8443);
  CHECK(o.c.tls == 1);
  CHECK(o.c.address == nullptr);
  CHECK(o.c.max_message_bytes == 65536);
  REQUIRE(o.c.plugin_count >= 2);
  CHECK(std::string(o.c.plugins[0]) == "keepalive");
  CHECK(std::string(o.c.plugins[1]) == "auth");
  CHECK(std::string(o.c.plugins[2]) == "pairing");
  CHECK(o.c.web_root != nullptr);
}

TEST_CASE("mounts and plugin options reach the core split into parts") {
  duet::CliOptions o;
  REQUIRE(parse({"--mount", "/media/=/tmp", "--plugin-opt", "pairing.takeover=refuse", "--no-tls"}, o).code == -1);
  REQUIRE(o.c.mount_count == 1);
  CHECK(std::string(o.c.mounts[0].url) == "/media");
  CHECK(std::string(o.c.mounts[0].dir) == "/tmp");
  REQUIRE(o.c.plugin_opt_count == 1);
  CHECK(std::string(o.c.plugin_opts[0].plugin) == "pairing");
  CHECK(std::string(o.c.plugin_opts[0].key) == "takeover");
  CHECK(std::string(o.c.plugin_opts[0].value) == "refuse");
  CHECK(o.c.tls == 0);
}

TEST_CASE("usage errors exit with code 2 and say what is wrong") {
  duet::CliOptions a, b, c, d, e, f;
  Run r = parse({"--port", "abc"}, a);
  CHECK(r.code == 2);
  CHECK(r.err.find("--port") != std::string::npos);
  CHECK(parse({"--bogus"}, b).code == 2);
  CHECK(parse({"--port", "70000"}, c).code == 2);
  Run m = parse({"--mount", "/../x=/tmp"}, d);
  CHECK(m.code == 2);
  CHECK(parse({"--plugin-opt", "takeover"}, e).code == 2);
  CHECK(parse({"--no-default-plugins"}, f).code == 2);
}

TEST_CASE("help and version exit 0 and print to stdout") {
  duet::CliOptions a, b;
  Run h = parse({"--help"}, a);
  CHECK(h.code == 0);
  for (const char *opt : {"--port", "--cert", "--key", "--no-tls", "--web-root", "--mount", "--plugin",
                          "--plugin-opt", "--plugin-dir", "--config", "--max-message-bytes", "--list-plugins"})
    CHECK(h.out.find(opt) != std::string::npos);
  Run v = parse({"--version"}, b);
  CHECK(v.code == 0);
  CHECK(v.out.find("duetd") != std::string::npos);
}
