// duet plugin ABI for C++17: derive from duet::Plugin, declare options with
// duet::option, read them with host().options() (one error format, defaults
// declared once, in the table), start timers with host().start_timer (a
// callable; exceptions are caught), and emit the extern "C" entry once in a
// .cpp file with DUET_PLUGIN(ident, Class, "name", "version", "description",
// options). Exceptions never cross into duetd: the trampolines catch them,
// log them and map them to errors. From init (the constructor): a
// duet::OptionError (what every options() accessor throws) makes duetd exit
// with the usage-error code 2; std::bad_alloc and any other exception
// (duet::EnvironmentError, say) with code 1.
//
// Example (tests/abi compiles this text from here and loads it in duetd):
// BEGIN EXAMPLE
// #include <duet/plugin.hpp>
//
// namespace {
// const duet_plugin_option_t kOptions[] = {
//     duet::option("word", "hello", "what greet answers"),
//     duet::option("delay", "0", "how long to wait before answering (like 0, 250ms or 2s)"),
//     {},
// };
//
// class Greeter : public duet::Plugin {
//  public:
//   explicit Greeter(const duet::Host &host)
//       : Plugin(host),
//         word_(host.options().text("word")),
//         delay_(host.options().duration("delay", std::chrono::milliseconds(0), std::chrono::seconds(10))) {}
//
//   duet_verdict_t on_message(duet::ConnId conn, const duet::Message &msg, duet_reject_t &) override {
//     if (msg.type() != "greet")
//       return DUET_PASS;  // let the next plugin see it
//     later_ = host().start_timer(delay_, {}, [this, conn] { host().send(conn, "{\"greet\":\"" + word_ + "\"}"); });
//     return DUET_HANDLED;
//   }
//
//  private:
//   std::string word_;
//   std::chrono::milliseconds delay_;
//   duet::Timer later_;
// };
// }  // namespace
//
// DUET_PLUGIN(greeter, Greeter, "greeter", "1.0.0", "answers greet after a delay", kOptions)
// END EXAMPLE
#ifndef DUET_PLUGIN_HPP
#define DUET_PLUGIN_HPP

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "duet/plugin.h"
#include "duet/util.hpp"

namespace duet {

using ConnId = std::uint64_t;

// One entry of a plugin's options table; end the table with {}. flag, when
// set, is the top-level duetd flag that sets the option (see
// duet_plugin_option_t), value_name what its help calls the value, and
// flags its DUET_OPTION_* bits.
constexpr duet_plugin_option_t option(const char *key, const char *default_value, const char *help,
                                      const char *flag = nullptr, const char *value_name = nullptr,
                                      std::uint32_t flags = 0) {
  return {key, default_value, help, flag, value_name, flags};
}

class Options;
class Timer;

// The host table plus this plugin's ctx: what a plugin can ask of duetd.
class Host {
public:
  Host(const duet_host_t *table, duet_host_ctx_t *ctx, const char *plugin_name = nullptr)
      : table_(table), ctx_(ctx), name_(plugin_name ? plugin_name : "PLUGIN") {}

  int send(ConnId conn, std::string_view json) const { return table_->send(ctx_, conn, json.data(), json.size()); }
  int send_error(ConnId conn, const char *code, const char *message) const {
    return table_->send_error(ctx_, conn, code, message);
  }
  int close(ConnId conn, int ws_code, const char *reason, duet_close_reason_t why = DUET_CLOSE_SERVER) const {
    return table_->close(ctx_, conn, ws_code, reason, why);
  }
  // Runs fn after timeout, then every repeat if repeat > 0, until the Timer
  // is stopped or destroyed. An exception from fn is logged, never passed
  // to duetd. Throws EnvironmentError when duetd cannot start a timer.
  Timer start_timer(std::chrono::milliseconds timeout, std::chrono::milliseconds repeat,
                    std::function<void()> fn) const;
  // The raw host timer, for C-style callbacks that never throw.
  std::int64_t timer_start(std::uint64_t timeout_ms, std::uint64_t repeat_ms, duet_timer_cb cb, void *userdata) const {
    return table_->timer_start(ctx_, timeout_ms, repeat_ms, cb, userdata);
  }
  int timer_stop(std::int64_t id) const { return table_->timer_stop(ctx_, id); }
  int emit(const char *name, ConnId conn, std::string_view json = {}) const {
    duet_event_t event{name, conn, json.empty() ? nullptr : json.data(), json.size()};
    return table_->emit(ctx_, &event);
  }
  int set_data(ConnId conn, void *data) const { return table_->conn_set_data(ctx_, conn, data); }
  void *data(ConnId conn) const { return table_->conn_get_data(ctx_, conn); }
  // The raw option value (given or default); nullopt for an undeclared key.
  std::optional<std::string_view> config(const char *key) const {
    const char *v = table_->config_get(ctx_, key);
    return v ? std::optional<std::string_view>(v) : std::nullopt;
  }
  Options options() const;
  void log(duet_log_level_t level, const std::string &message) const { table_->log(ctx_, level, message.c_str()); }
  // A string member of msg by JSON Pointer; the view lives until on_message returns.
  std::optional<std::string_view> string_at(const duet_msg_t &msg, const char *pointer) const {
    const char *out = nullptr;
    std::size_t len = 0;
    if (table_->msg_string(ctx_, &msg, pointer, &out, &len) != 0)
      return std::nullopt;
    return std::string_view(out, len);
  }

  // Fills info; false when the connection is gone.
  bool conn_info(ConnId conn, duet_conn_info_t &info) const {
    info.struct_size = sizeof info;
    return table_->conn_info(ctx_, conn, &info) == 0;
  }
  int ping(ConnId conn) const { return table_->ping(ctx_, conn); }
  std::int64_t metric(const char *name, const char *help, duet_metric_type_t type) const {
    return table_->metric_register(ctx_, name, help, type);
  }
  int metric_add(std::int64_t id, std::int64_t delta) const { return table_->metric_add(ctx_, id, delta); }
  int metric_set(std::int64_t id, std::int64_t value) const { return table_->metric_set(ctx_, id, value); }

  // Since ABI 1.4; an older duetd's table lacks them (provides_1_4() says so).
  bool provides_1_4() const {
    return table_->struct_size >= offsetof(duet_host_t, listen_port) + sizeof(duet_host_t::listen_port);
  }
  std::int64_t fd_watch(int fd, std::uint32_t events, duet_fd_cb cb, void *userdata) const {
    return provides_1_4() ? table_->fd_watch(ctx_, fd, events, cb, userdata) : DUET_ENOENT;
  }
  int fd_watch_set(std::int64_t id, std::uint32_t events) const {
    return provides_1_4() ? table_->fd_watch_set(ctx_, id, events) : DUET_ENOENT;
  }
  int fd_watch_stop(std::int64_t id) const { return provides_1_4() ? table_->fd_watch_stop(ctx_, id) : DUET_ENOENT; }
  int set_health(bool degraded, const char *reason) const {
    return provides_1_4() ? table_->set_health(ctx_, degraded, reason) : DUET_ENOENT;
  }
  int listen_port() const { return provides_1_4() ? table_->listen_port(ctx_) : 0; }

  // Since ABI 1.5: where this duetd runs (worker, node id); nullopt from an
  // older duetd, which has no workers that could tell.
  bool provides_1_5() const {
    return table_->struct_size >= offsetof(duet_host_t, node_info) + sizeof(duet_host_t::node_info);
  }
  std::optional<duet_node_info_t> node_info() const {
    duet_node_info_t info{};
    info.struct_size = sizeof info;
    if (!provides_1_5() || table_->node_info(ctx_, &info) != 0)
      return std::nullopt;
    return info;
  }

  // Since ABI 1.6: hold duetd's exit while work the closes started is under
  // way (plugin.h says when duetd waits, and how long); an older duetd's
  // table lacks it, and exits without waiting.
  bool provides_1_6() const {
    return table_->struct_size >= offsetof(duet_host_t, hold_exit) + sizeof(duet_host_t::hold_exit);
  }
  int hold_exit(bool hold) const { return provides_1_6() ? table_->hold_exit(ctx_, hold ? 1 : -1) : DUET_ENOENT; }

  const duet_host_t *table() const { return table_; }
  const char *plugin_name() const { return name_; }

private:
  const duet_host_t *table_;
  duet_host_ctx_t *ctx_;
  const char *name_;
};

// This plugin's options, read with one error format: a bad value throws
// OptionError "KEY must be WHAT, not 'VALUE' (--plugin-opt NAME.KEY)". The
// value is the one given or the default in the options table, so each
// default is written once, there. Get one from Host::options().
class Options {
public:
  explicit Options(const Host &host) : host_(host) {}

  // The value as given (or the declared default).
  std::string text(const char *key) const {
    const std::optional<std::string_view> value = host_.config(key);
    if (!value)
      throw std::logic_error(std::string("option ") + key + " is read but not declared in the options table");
    return std::string(*value);
  }

  // A whole decimal number from min to max.
  std::int64_t integer(const char *key, std::int64_t min, std::int64_t max) const {
    const std::string value = text(key);
    std::int64_t n = 0;
    const char *end = value.data() + value.size();
    auto [ptr, ec] = std::from_chars(value.data(), end, n);
    if (value.empty() || value[0] == '+' || ec != std::errc() || ptr != end || n < min || n > max)
      fail(key, value, "a whole number from " + std::to_string(min) + " to " + std::to_string(max));
    return n;
  }

  // A duration (see parse_duration) from min to max.
  std::chrono::milliseconds duration(const char *key, std::chrono::milliseconds min,
                                     std::chrono::milliseconds max) const {
    const std::string value = text(key);
    const std::optional<std::chrono::milliseconds> d = parse_duration(value);
    if (!d || *d < min || *d > max)
      fail(key, value,
           "a duration from " + seconds(min) + " to " + seconds(max) +
               " seconds: a number of seconds, or one with ms, s, m, h or d (like 30, 0.5, 250ms or 2m)");
    return *d;
  }

  // true/yes/on/1 or false/no/off/0.
  bool boolean(const char *key) const {
    return one_of<bool>(key, {{"true", true},
                              {"yes", true},
                              {"on", true},
                              {"1", true},
                              {"false", false},
                              {"no", false},
                              {"off", false},
                              {"0", false}});
  }

  // One of the names in choices; returns its value.
  template <class T> T one_of(const char *key, std::initializer_list<std::pair<const char *, T>> choices) const {
    const std::string value = text(key);
    std::string names;
    for (const auto &[name, result] : choices) {
      if (value == name)
        return result;
      names += (names.empty() ? "" : " or ") + std::string("'") + name + "'";
    }
    fail(key, value, names);
  }

  // The contents of the file the option names (see read_trimmed_file), or
  // nullopt when the option is empty. An unreadable file is a bad value.
  std::optional<std::string> file_contents(const char *key) const {
    const std::string path = text(key);
    if (path.empty())
      return std::nullopt;
    try {
      return read_trimmed_file(path);
    } catch (const EnvironmentError &e) {
      fail(key, path, std::string("a readable file (") + e.what() + ")");
    }
  }

  // Throws the OptionError every accessor throws: "KEY must be WHAT, not
  // 'VALUE' (--plugin-opt NAME.KEY)".
  [[noreturn]] void fail(const char *key, const std::string &value, const std::string &what) const {
    throw OptionError(std::string(key) + " must be " + what + ", not '" + value + "' (--plugin-opt " +
                      host_.plugin_name() + "." + key + ")");
  }

  // Throws an OptionError for a value that is fine alone but not with the
  // others: sentence says why, the option is named after it ("cluster-password-file
  // needs cluster (--plugin-opt pairing.cluster-password-file)").
  [[noreturn]] void refuse(const char *key, const std::string &sentence) const {
    throw OptionError(sentence + " (--plugin-opt " + host_.plugin_name() + "." + key + ")");
  }

private:
  static std::string seconds(std::chrono::milliseconds ms) {
    std::string s = std::to_string(ms.count() / 1000);
    if (ms.count() % 1000) {
      std::string frac = std::to_string(1000 + ms.count() % 1000).substr(1);
      while (frac.back() == '0')
        frac.pop_back();
      s += "." + frac;
    }
    return s;
  }

  const Host &host_;
};

inline Options Host::options() const { return Options(*this); }

namespace detail {

// What a Timer owns: the callable and the host timer's id. Freed by the
// Timer, or, when the Timer goes while fn runs, by fire after fn returns.
struct TimerState {
  TimerState(const Host &h, std::function<void()> f) : host(h), fn(std::move(f)) {}
  Host host;
  std::function<void()> fn;
  std::int64_t id = 0;
  bool running = false;
  bool orphaned = false;

  static void fire(void *userdata) noexcept {
    auto *state = static_cast<TimerState *>(userdata);
    state->running = true;
    try {
      state->fn();
    } catch (const std::exception &e) {
      report(*state, e.what());
    } catch (...) {
      report(*state, "unknown exception");
    }
    state->running = false;
    if (state->orphaned)
      delete state;
  }
  static void report(const TimerState &state, const char *what) noexcept {
    try {
      state.host.log(DUET_LOG_ERROR, std::string("timer callback threw: ") + what);
    } catch (...) {
    }
  }
};

}  // namespace detail

// A running host timer (Host::start_timer); stopping or destroying it stops
// the timer, also from inside its own callback. Empty when default-made.
class Timer {
public:
  Timer() = default;
  explicit Timer(detail::TimerState *state) : state_(state) {}
  Timer(Timer &&other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  Timer &operator=(Timer &&other) noexcept {
    if (this != &other) {
      stop();
      state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
  }
  Timer(const Timer &) = delete;
  Timer &operator=(const Timer &) = delete;
  ~Timer() { stop(); }

  void stop() noexcept {
    detail::TimerState *state = std::exchange(state_, nullptr);
    if (!state)
      return;
    state->host.timer_stop(state->id);  // DUET_ENOENT for a one-shot that fired: fine
    if (state->running)
      state->orphaned = true;  // fire frees it once the callback returns
    else
      delete state;
  }
  explicit operator bool() const { return state_ != nullptr; }

private:
  detail::TimerState *state_ = nullptr;
};

inline Timer Host::start_timer(std::chrono::milliseconds timeout, std::chrono::milliseconds repeat,
                               std::function<void()> fn) const {
  auto *state = new detail::TimerState(*this, std::move(fn));
  const std::int64_t id = timer_start(static_cast<std::uint64_t>(std::max<std::int64_t>(0, timeout.count())),
                                      static_cast<std::uint64_t>(std::max<std::int64_t>(0, repeat.count())),
                                      &detail::TimerState::fire, state);
  if (id <= 0) {
    delete state;
    throw EnvironmentError("duetd could not start a timer: error " + std::to_string(id));
  }
  state->id = id;
  return Timer(state);
}

// A message handed to on_message: its type and the JSON as received.
struct Message {
  const duet_msg_t &raw;
  std::string_view type() const { return {raw.type, raw.type_len}; }
  std::string_view json() const { return {raw.json, raw.json_len}; }
};

// The base of a C++ plugin. The Host its constructor is given lives as long
// as the plugin: parts of the plugin may keep a reference to it. A plugin
// says where it belongs in the chain with a static member, e.g.
//   static constexpr duet_stage_t kStage = DUET_STAGE_ADMISSION;
// (none: DUET_STAGE_UNSET, the place it is loaded in).
class Plugin {
public:
  explicit Plugin(const Host &host) : host_(host) {}
  virtual ~Plugin() = default;
  Plugin(const Plugin &) = delete;
  Plugin &operator=(const Plugin &) = delete;

  virtual void on_open(ConnId) {}
  // Return DUET_PASS, DUET_HANDLED, or DUET_REJECT after filling reject.
  virtual duet_verdict_t on_message(ConnId, const Message &, duet_reject_t &) { return DUET_PASS; }
  virtual void on_close(ConnId, duet_close_reason_t) {}
  virtual void on_event(const duet_event_t &) {}

protected:
  const Host &host() const { return host_; }

private:
  Host host_;
};

namespace detail {

// A plugin and the Host it was made with, which outlives it (declared first).
template <class T> struct Instance {
  Instance(const duet_host_t *table, duet_host_ctx_t *ctx, const char *name) : host(table, ctx, name), plugin(host) {}
  Host host;
  T plugin;
};

// T::kStage when the class declares one, else DUET_STAGE_UNSET.
template <class T, class = void> struct StageOf { static constexpr duet_stage_t value = DUET_STAGE_UNSET; };
template <class T> struct StageOf<T, std::void_t<decltype(T::kStage)>> {
  static constexpr duet_stage_t value = T::kStage;
};

// The host fields a C++ plugin may call; an older duetd's table must cover them.
constexpr std::size_t kHostFieldsUsed = offsetof(duet_host_t, metric_set) + sizeof(duet_host_t::metric_set);

template <class T, const char *Name> struct Trampolines {
  static int init(const duet_host_t *host, duet_host_ctx_t *ctx, void **state) noexcept {
    if (!host || host->abi_major != DUET_ABI_MAJOR)
      return DUET_EINVAL;
    if (host->struct_size < kHostFieldsUsed) {
      log(host, ctx,
          std::string("built for plugin ABI ") + std::to_string(DUET_ABI_MAJOR) + "." + std::to_string(DUET_ABI_MINOR) +
              ", but this duetd provides ABI " + std::to_string(host->abi_major) + "." +
              std::to_string(host->abi_minor) + ", which lacks host functions it uses: upgrade duetd");
      return DUET_EIO;
    }
    try {
      *state = new Instance<T>(host, ctx, Name);
      return 0;
    } catch (const std::bad_alloc &) {
      return DUET_ENOMEM;
    } catch (const OptionError &e) {
      log(host, ctx, std::string("bad option: ") + e.what());
      return DUET_EINVAL;  // duetd exits with the usage-error code 2
    } catch (const std::exception &e) {
      log(host, ctx, std::string("init failed: ") + e.what());
      return DUET_EIO;  // exit code 1
    } catch (...) {
      log(host, ctx, "init failed: unknown exception");
      return DUET_EIO;
    }
  }
  static void log(const duet_host_t *host, duet_host_ctx_t *ctx, const std::string &message) noexcept {
    try {
      host->log(ctx, DUET_LOG_ERROR, message.c_str());
    } catch (...) {
    }
  }
  static void shutdown(void *state) noexcept {
    try {
      delete static_cast<Instance<T> *>(state);
    } catch (...) {
    }
  }
  static void on_open(void *state, std::uint64_t conn) noexcept {
    T *p = &static_cast<Instance<T> *>(state)->plugin;
    try {
      p->on_open(conn);
    } catch (const std::exception &e) {
      p->report("on_open", e.what());
    } catch (...) {
      p->report("on_open", "unknown exception");
    }
  }
  static duet_verdict_t on_message(void *state, std::uint64_t conn, const duet_msg_t *msg,
                                   duet_reject_t *reject) noexcept {
    T *p = &static_cast<Instance<T> *>(state)->plugin;
    try {
      return p->on_message(conn, Message{*msg}, *reject);
    } catch (const std::exception &e) {
      p->report("on_message", e.what());
    } catch (...) {
      p->report("on_message", "unknown exception");
    }
    reject->code = "internal-error";
    reject->message = "The server failed to handle this message.";
    return DUET_REJECT;
  }
  static void on_close(void *state, std::uint64_t conn, duet_close_reason_t reason) noexcept {
    T *p = &static_cast<Instance<T> *>(state)->plugin;
    try {
      p->on_close(conn, reason);
    } catch (const std::exception &e) {
      p->report("on_close", e.what());
    } catch (...) {
      p->report("on_close", "unknown exception");
    }
  }
  static void on_event(void *state, const duet_event_t *event) noexcept {
    T *p = &static_cast<Instance<T> *>(state)->plugin;
    try {
      p->on_event(*event);
    } catch (const std::exception &e) {
      p->report("on_event", e.what());
    } catch (...) {
      p->report("on_event", "unknown exception");
    }
  }
};

}  // namespace detail

// Wraps a plugin class so the trampolines can log its exceptions.
template <class Base> class Reporting final : public Base {
public:
  using Base::Base;
  void report(const char *where, const char *what) noexcept {
    try {
      this->host().log(DUET_LOG_ERROR, std::string(where) + " threw: " + what);
    } catch (...) {
    }
  }
};

}  // namespace duet

#define DUET_PLUGIN_TRAMPOLINE_(Class, fn) &::duet::detail::Trampolines<::duet::Reporting<Class>, duet_plugin_name_>::fn
#define DUET_PLUGIN_DESCRIPTOR_(Class, name, version, description, options, commands)                                  \
  static constexpr char duet_plugin_name_[] = name;                                                                    \
  static const duet_plugin_t duet_plugin_descriptor_ = {                                                               \
      DUET_ABI_MAJOR,                                                                                                  \
      DUET_ABI_MINOR,                                                                                                  \
      sizeof(duet_plugin_t),                                                                                           \
      duet_plugin_name_,                                                                                               \
      version,                                                                                                         \
      description,                                                                                                     \
      DUET_PLUGIN_TRAMPOLINE_(Class, init),                                                                            \
      DUET_PLUGIN_TRAMPOLINE_(Class, shutdown),                                                                        \
      DUET_PLUGIN_TRAMPOLINE_(Class, on_open),                                                                         \
      DUET_PLUGIN_TRAMPOLINE_(Class, on_message),                                                                      \
      DUET_PLUGIN_TRAMPOLINE_(Class, on_close),                                                                        \
      DUET_PLUGIN_TRAMPOLINE_(Class, on_event),                                                                        \
      options,                                                                                                         \
      sizeof(duet_plugin_option_t),                                                                                    \
      commands,                                                                                                        \
      ::duet::detail::StageOf<Class>::value,                                                                           \
  };

// In a static build (-Dplugins=static) duetd links the plugin in and finds it
// as duet_static_entry_<ident>; otherwise the module exports the versioned
// entry symbol and nothing else.
#if defined(DUET_PLUGIN_STATIC)
#define DUET_PLUGIN_ENTRY_(ident)                                                                                      \
  extern "C" const duet_plugin_t *duet_static_entry_##ident(void) noexcept;                                            \
  extern "C" const duet_plugin_t *duet_static_entry_##ident(void) noexcept { return &duet_plugin_descriptor_; }
#else
#define DUET_PLUGIN_ENTRY_(ident)                                                                                      \
  extern "C" DUET_PLUGIN_EXPORT const duet_plugin_t *duet_plugin_entry_v1(void) noexcept;                              \
  extern "C" DUET_PLUGIN_EXPORT const duet_plugin_t *duet_plugin_entry_v1(void) noexcept {                             \
    return &duet_plugin_descriptor_;                                                                                   \
  }
#endif

// ident is a C identifier naming the plugin in static builds (its name with
// '-' as '_'); options is a duet_plugin_option_t array or nullptr.
#define DUET_PLUGIN(ident, Class, name, version, description, options)                                                 \
  DUET_PLUGIN_DESCRIPTOR_(Class, name, version, description, options, nullptr)                                         \
  DUET_PLUGIN_ENTRY_(ident)
// The same, with a NULL-terminated array of pointers to the plugin's commands.
#define DUET_PLUGIN_WITH_COMMANDS(ident, Class, name, version, description, options, commands)                         \
  DUET_PLUGIN_DESCRIPTOR_(Class, name, version, description, options, commands)                                        \
  DUET_PLUGIN_ENTRY_(ident)

#endif  // DUET_PLUGIN_HPP
