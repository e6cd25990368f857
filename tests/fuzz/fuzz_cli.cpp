// libFuzzer target: duetd's command line and --config parser
// (core/cli/options.cpp, duet::parse_command_line).
//
// Input: text. Lines up to a line "----" are argv[1..] (argv[0] is "duetd");
// whatever follows "----" is written to a temporary config file, and an argv
// line "@" is replaced by that file's path (so "--config\n@\n----\nport = 1"
// reads a config file). Without "----" there is no config file.
//
// Checks: parse_command_line never crashes and never lets an exception out;
// it says run, or stop with exit code 0 (--help/--version) or 2 (a usage
// error, with a message on err); to run, the C options it fills are
// consistent.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "cli/options.hpp"

namespace {

std::string config_path;

[[noreturn]] void violation(const char *what) {
  std::fprintf(stderr, "fuzz_cli: %s\n", what);
  __builtin_trap();
}

// Paths that would make the parser block or read forever (/dev/stdin,
// /dev/zero, /proc/self/fd/0) are operator mistakes, not inputs an attacker
// controls; skip them so the fuzzer does not hang on them.
bool blocks(std::string_view s) {
  return s.find("/dev") != std::string_view::npos || s.find("/proc") != std::string_view::npos ||
         s.find("/sys") != std::string_view::npos || s.find("/run") != std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  char tmpl[] = "/tmp/duet-fuzz-cli-XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd < 0)
    std::abort();
  close(fd);
  config_path = tmpl;
  std::atexit([] { unlink(config_path.c_str()); });
  // Keep the parser's view of the environment fixed between runs.
  setenv("HOME", "/tmp", 1);
  unsetenv("STATE_DIRECTORY");
  unsetenv("XDG_STATE_HOME");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 16 * 1024)
    return 0;
  std::string_view input(reinterpret_cast<const char *>(data), size);
  if (blocks(input))
    return 0;

  std::vector<std::string> args{"duetd"};
  std::string_view config;
  bool have_config = false;
  size_t pos = 0;
  while (pos <= input.size()) {
    size_t nl = input.find('\n', pos);
    if (nl == std::string_view::npos)
      nl = input.size();
    std::string_view line = input.substr(pos, nl - pos);
    pos = nl + 1;
    if (line == "----") {
      have_config = true;
      config = pos <= input.size() ? input.substr(pos) : std::string_view();
      break;
    }
    if (line.empty() && pos > input.size())
      break;
    args.emplace_back(line == "@" ? config_path : std::string(line));
    if (args.size() > 200)
      return 0;
  }
  if (have_config) {
    FILE *f = std::fopen(config_path.c_str(), "wb");
    if (!f)
      std::abort();
    std::fwrite(config.data(), 1, config.size(), f);
    std::fclose(f);
  } else {
    std::FILE *f = std::fopen(config_path.c_str(), "wb");  // an empty file
    if (f)
      std::fclose(f);
  }

  // "duetd admin" talks to a running duetd over the network: not this
  // target's business (tests/integration/test_admin.py covers it).
  if (args.size() > 1 && args[1] == "admin")
    return 0;

  std::vector<const char *> argv;
  for (const auto &a : args)
    argv.push_back(a.c_str());
  argv.push_back(nullptr);

  duet::CliOptions options;
  std::ostringstream out, err;
  duet::CliOutcome outcome;
  try {
    outcome = duet::parse_command_line(static_cast<int>(args.size()), argv.data(), options, out, err);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "fuzz_cli: exception escaped parse_command_line: %s\n", e.what());
    __builtin_trap();
  } catch (...) {
    violation("a non-std exception escaped parse_command_line");
  }
  if (!outcome.run && outcome.exit_code != DUET_EXIT_OK && outcome.exit_code != DUET_EXIT_USAGE)
    violation("an exit code other than 0 or 2");
  if (!outcome.run && outcome.exit_code == DUET_EXIT_USAGE && err.str().empty())
    violation("a usage error without a message");
  if (outcome.run) {
    const duet_options_t &c = options.c;
    if (c.port < 0 || c.port > 65535)
      violation("port out of range");
    if (c.web_root == nullptr)
      violation("no web root");
    if (c.max_message_bytes < 256 || c.max_message_bytes > 16u * 1024 * 1024)
      violation("max-message-bytes out of range");
    if (c.max_connections < 1 || c.max_connections_per_ip < 1)
      violation("connection caps below 1");
    if (c.plugin_count == 0 && c.plugin_dir_count == 0)
      violation("nothing to load");
    if ((c.cert == nullptr) != (c.key == nullptr))
      violation("cert without key or key without cert");
    if (c.cert != nullptr && !c.tls)
      violation("--cert with --no-tls");
    for (size_t i = 0; i < c.mount_count; i++) {
      const char *url = c.mounts[i].url;
      if (url == nullptr || url[0] != '/' || std::strcmp(url, "/") == 0 || c.mounts[i].dir == nullptr)
        violation("bad mount accepted");
      for (const char *p = url; *p; p++)
        if (*p == '/' && (p[1] == '.' || p[1] == '/'))
          violation("mount URL with a dot or empty segment accepted");
      for (size_t j = 0; j < i; j++)
        if (std::strcmp(c.mounts[j].url, url) == 0)
          violation("the same mount URL twice");
    }
    for (size_t i = 0; i < c.plugin_opt_count; i++)
      if (c.plugin_opts[i].plugin == nullptr || c.plugin_opts[i].plugin[0] == '\0' ||
          c.plugin_opts[i].key == nullptr || c.plugin_opts[i].key[0] == '\0' || c.plugin_opts[i].value == nullptr)
        violation("a plugin option without plugin or key");
  }
  return 0;
}
