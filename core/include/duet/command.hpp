// Commands a plugin offers on duetd's command line ("duetd NAME ARGS", see
// duet_plugin_command_t), in C++17: one argument parser ("--name VALUE" or
// "--name=VALUE", each name declared once with its default), --help, and
// one way to report errors. Write the body, then make the entry:
//
//   const duet::CommandOption kOptions[] = {{"--secret", nullptr}, {"--ttl", "1h"}};
//   const duet::CommandSpec kSpec = {"hello", kUsage, kOptions, 2, &hello_body};
//   int hello(int argc, const char *const *argv, duet_write_fn write, void *out, void *err) noexcept {
//     return duet::run_command(kSpec, argc, argv, write, out, err);
//   }
//   const duet_plugin_command_t kHello = duet::command("hello", "say hello, then exit", &hello);
//
// The body returns the exit code (0); a duet::UsageError (or an OptionError
// or EnvironmentError from the helpers in duet/util.hpp) becomes exit code
// 2 with its message and a pointer to --help, anything else exit code 1.
#ifndef DUET_COMMAND_HPP
#define DUET_COMMAND_HPP

#include <cstddef>
#include <exception>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>

#include "duet/plugin.h"
#include "duet/util.hpp"

namespace duet {

// A usage error of a command: exit code 2, the message names what to fix.
class UsageError : public std::invalid_argument {
public:
  using std::invalid_argument::invalid_argument;
};

// One argument a command accepts; default_value nullptr: none (absent
// unless given).
struct CommandOption {
  const char *name;  // "--ttl"
  const char *default_value;
};

// Where a command writes: its two streams.
class CommandIo {
public:
  CommandIo(duet_write_fn write, void *out, void *err) : write_(write), out_(out), err_(err) {}
  void print(std::string_view text) const { write_(out_, text.data(), text.size()); }
  void print_error(std::string_view text) const { write_(err_, text.data(), text.size()); }

private:
  duet_write_fn write_;
  void *out_, *err_;
};

// A command's arguments, parsed against its declared options.
class CommandArgs {
public:
  CommandArgs(int argc, const char *const *argv, const CommandOption *options, std::size_t count) {
    for (std::size_t k = 0; k < count; k++)
      if (options[k].default_value)
        values_[options[k].name] = options[k].default_value;
    for (int i = 1; i < argc; i++) {
      const std::string arg = argv[i];
      const auto eq = arg.find('=');
      const std::string name = arg.substr(0, eq);
      if (!declared(name, options, count))
        throw UsageError("unknown argument " + arg);
      if (eq == std::string::npos && i + 1 >= argc)
        throw UsageError(name + " needs a value");
      values_[name] = eq == std::string::npos ? argv[++i] : arg.substr(eq + 1);
    }
  }

  bool has(const std::string &name) const { return values_.count(name) != 0; }
  // The value given, else the default; "" for one neither given nor defaulted.
  std::string value(const std::string &name) const {
    const auto it = values_.find(name);
    return it == values_.end() ? std::string() : it->second;
  }
  // The value, or a UsageError saying that name is required.
  std::string required(const std::string &name, const char *what = "") const {
    if (!has(name))
      throw UsageError(name + (*what ? std::string(" ") + what : std::string()) + " is required");
    return value(name);
  }

private:
  static bool declared(const std::string &name, const CommandOption *options, std::size_t count) {
    for (std::size_t k = 0; k < count; k++)
      if (name == options[k].name)
        return true;
    return false;
  }

  std::map<std::string, std::string> values_;
};

// What a command is: its name, its --help text, its options and its body.
struct CommandSpec {
  const char *name;
  const char *usage;  // printed for --help or -h, ending in a newline
  const CommandOption *options;
  std::size_t option_count;
  int (*body)(const CommandArgs &args, const CommandIo &io);
};

// Runs spec's body on argv (argv[0] is the command's name): --help, the
// parse, and errors as exit codes. Never throws.
inline int run_command(const CommandSpec &spec, int argc, const char *const *argv, duet_write_fn write, void *out,
                       void *err) noexcept {
  const CommandIo io(write, out, err);
  try {
    for (int i = 1; i < argc; i++)
      if (std::string_view(argv[i]) == "--help" || std::string_view(argv[i]) == "-h") {
        io.print(spec.usage);
        return 0;
      }
    return spec.body(CommandArgs(argc, argv, spec.options, spec.option_count), io);
  } catch (const std::invalid_argument &e) {  // UsageError, OptionError
    io.print_error(std::string(spec.name) + ": " + e.what() + "\nRun 'duetd " + spec.name +
                   " --help' for its options.\n");
    return 2;
  } catch (const EnvironmentError &e) {
    io.print_error(std::string(spec.name) + ": " + e.what() + "\n");
    return 2;  // a file named on the command line: the command line must change
  } catch (const std::exception &e) {
    io.print_error(std::string(spec.name) + ": " + e.what() + "\n");
    return 1;
  } catch (...) {
    return 1;
  }
}

// The descriptor entry for a command (see duet_plugin_command_t).
constexpr duet_plugin_command_t command(const char *name, const char *help,
                                        int (*run)(int, const char *const *, duet_write_fn, void *, void *)) {
  return {sizeof(duet_plugin_command_t), name, help, run};
}

}  // namespace duet

#endif  // DUET_COMMAND_HPP
