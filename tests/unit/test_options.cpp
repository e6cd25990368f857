// The command line: defaults, values reaching the C options, usage errors.
#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "cli/options.hpp"

namespace {
struct Run {
  int code;  // -1: run the server
  std::string out, err;
};

Run parse(std::vector<std::string> args, duet::CliOptions &o) {
  args.insert(args.begin(), "duetd");
  std::vector<const char *> argv;
  for (auto &a : args)
    argv.push_back(a.c_str());
  std::ostringstream out, err;
  const duet::CliOutcome outcome = duet::parse_command_line(static_cast<int>(argv.size()), argv.data(), o, out, err);
  return {outcome.run ? -1 : outcome.exit_code, out.str(), err.str()};
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

namespace {
Run parse_with(std::vector<std::string> args, duet::CliOptions &o, const duet::PluginDeclarations &plugins) {
  args.insert(args.begin(), "duetd");
  std::vector<const char *> argv;
  for (auto &a : args)
    argv.push_back(a.c_str());
  std::ostringstream out, err;
  const duet::CliOutcome outcome =
      duet::parse_command_line(static_cast<int>(argv.size()), argv.data(), o, plugins, out, err);
  return {outcome.run ? -1 : outcome.exit_code, out.str(), err.str()};
}

int fake_command(int argc, const char *const *argv, duet_write_fn write, void *out, void *err) {
  std::string text = std::string(argv[0]) + ":" + std::to_string(argc - 1) + (argc > 1 ? std::string(":") + argv[1] : "");
  write(out, text.data(), text.size());
  write(err, "e", 1);
  return argv[argc] == nullptr ? 7 : 99;
}

duet::PluginDeclarations fake_plugins() {
  duet::PluginDeclarations d;
  d.flags.push_back({"greeter", "word", "greeting", "what to say", "WORD", 0});
  d.flags.push_back({"greeter", "urls", "greet-url", "where", "URL", DUET_OPTION_REPEATABLE});
  d.flags.push_back({"greeter", "port", "port", "collides with duetd's own --port", "", 0});
  d.commands.push_back({"greeter", "hello", "say hello", fake_command});
  return d;
}
}  // namespace

TEST_CASE("a plugin's declared flags become its options; repeats join; --plugin-opt wins") {
  const auto plugins = fake_plugins();
  duet::CliOptions o;
  REQUIRE(parse_with({"--greeting", "hi", "--greet-url", "a:1", "--greet-url", "b:2", "--plugin-opt",
                      "greeter.word=bye"},
                     o, plugins)
              .code == -1);
  REQUIRE(o.c.plugin_opt_count == 3);
  CHECK(std::string(o.c.plugin_opts[0].plugin) == "greeter");
  CHECK(std::string(o.c.plugin_opts[0].key) == "word");
  CHECK(std::string(o.c.plugin_opts[0].value) == "hi");
  CHECK(std::string(o.c.plugin_opts[1].key) == "urls");
  CHECK(std::string(o.c.plugin_opts[1].value) == "a:1,b:2");
  CHECK(std::string(o.c.plugin_opts[2].value) == "bye");  // the host reads the last one given
}

TEST_CASE("a plugin flag never shadows duetd's own options, and unknown flags stay errors") {
  const auto plugins = fake_plugins();
  duet::CliOptions a, b, c;
  REQUIRE(parse_with({"--port", "9000"}, a, plugins).code == -1);
  CHECK(a.c.port == 9000);
  CHECK(a.c.plugin_opt_count == 0);
  CHECK(parse_with({"--greeting"}, b, plugins).code == 2);
  Run help = parse_with({"--help"}, c, plugins);
  CHECK(help.out.find("--greeting WORD") != std::string::npos);
  CHECK(help.out.find("--plugin-opt greeter.word=WORD") != std::string::npos);
  CHECK(help.out.find("duetd hello") != std::string::npos);
}

TEST_CASE("without declarations there are no plugin flags") {
  duet::CliOptions o;
  CHECK(parse({"--greeting", "hi"}, o).code == 2);
}

TEST_CASE("a plugin's command runs instead of the server with its own arguments") {
  const auto plugins = fake_plugins();
  duet::CliOptions o;
  Run r = parse_with({"hello", "--x"}, o, plugins);
  CHECK(r.code == 7);
  CHECK(r.out == "hello:1:--x");
  CHECK(r.err == "e");
}

TEST_CASE("no --workers means one process; --workers N asks for N workers") {
  duet::CliOptions one;
  REQUIRE(parse({}, one).code == -1);
  CHECK(one.c.workers == 0);
  CHECK(one.c.worker_index == 0);
  duet::CliOptions three;
  REQUIRE(parse({"--workers", "3", "--plugin-opt", "pairing.cluster=unix:///tmp/r.sock"}, three).code == -1);
  CHECK(three.c.workers == 3);
  duet::CliOptions solo;
  REQUIRE(parse({"--workers", "1"}, solo).code == -1);
  CHECK(solo.c.workers == 1);
}

TEST_CASE("--workers 0, 257 or a word is a usage error") {
  Run r;
  for (const char *value : {"0", "257", "many"}) {
    duet::CliOptions o;
    r = parse({"--workers", value, "--plugin-opt", "pairing.cluster=unix:///tmp/r.sock"}, o);
    CHECK(r.code == 2);
    CHECK(r.err.find("from 1 to 256, or auto") != std::string::npos);
  }
}

TEST_CASE("a worker ignores --workers and serves health on the admin port plus its index minus 1") {
  duet::CliOptions o;
  REQUIRE(parse({"--workers", "4", "--worker-index", "3", "--admin-listen", "127.0.0.1:9000"}, o).code == -1);
  CHECK(o.c.workers == 0);
  CHECK(o.c.worker_index == 3);
  CHECK(o.c.admin_port == 9002);
}

TEST_CASE("a worker learns its index, the number of workers and the node id") {
  duet::CliOptions o;
  REQUIRE(parse({"--worker-index", "2", "--worker-count", "4", "--node-id", "edge"}, o).code == -1);
  CHECK(o.c.worker_index == 2);
  CHECK(o.c.worker_count == 4);
  CHECK(std::string(o.c.node_id) == "edge");
  duet::CliOptions plain;
  REQUIRE(parse({}, plain).code == -1);
  CHECK(plain.c.node_id == nullptr);
}

TEST_CASE("--plugin-stage moves a named plugin to a named stage; anything else is a usage error") {
  duet::CliOptions o;
  REQUIRE(parse({"--plugin-stage", "allowlist=admission", "--plugin-stage", "audit-log=transport"}, o).code == -1);
  REQUIRE(o.c.plugin_stage_count == 2);
  CHECK(std::string(o.c.plugin_stages[0].plugin) == "allowlist");
  CHECK(o.c.plugin_stages[0].stage == DUET_STAGE_ADMISSION);
  CHECK(std::string(o.c.plugin_stages[1].plugin) == "audit-log");
  CHECK(o.c.plugin_stages[1].stage == DUET_STAGE_TRANSPORT);
  for (const char *bad : {"allowlist", "allowlist=first", "=admission", "allowlist=unset"}) {
    duet::CliOptions b;
    Run r = parse({"--plugin-stage", bad}, b);
    CHECK(r.code == 2);
    CHECK(r.err.find("transport, admission, routing or observer") != std::string::npos);
  }
}
