// duet plugin ABI for C++17: derive from duet::Plugin, then
// DUET_PLUGIN(ident, Class, "name", "version", "description", options) once in a
// .cpp file emits the extern "C" entry. Exceptions never cross into duetd:
// the trampolines catch them, log them and map them to errors.
#ifndef DUET_PLUGIN_HPP
#define DUET_PLUGIN_HPP

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include "duet/plugin.h"

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

// The host table plus this plugin's ctx: what a plugin can ask of duetd.
class Host {
 public:
  Host(const duet_host_t *table, duet_host_ctx_t *ctx) : table_(table), ctx_(ctx) {}

  int send(ConnId conn, std::string_view json) const { return table_->send(ctx_, conn, json.data(), json.size()); }
  int send_error(ConnId conn, const char *code, const char *message) const {
    return table_->send_error(ctx_, conn, code, message);
  }
  int close(ConnId conn, int ws_code, const char *reason, duet_close_reason_t why = DUET_CLOSE_SERVER) const {
    return table_->close(ctx_, conn, ws_code, reason, why);
  }
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
  std::optional<std::string_view> config(const char *key) const {
    const char *v = table_->config_get(ctx_, key);
    return v ? std::optional<std::string_view>(v) : std::nullopt;
  }
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

  const duet_host_t *table() const { return table_; }

 private:
  const duet_host_t *table_;
  duet_host_ctx_t *ctx_;
};

// A message handed to on_message: its type and the JSON as received.
struct Message {
  const duet_msg_t &raw;
  std::string_view type() const { return {raw.type, raw.type_len}; }
  std::string_view json() const { return {raw.json, raw.json_len}; }
};

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

// The host fields a C++ plugin may call; an older duetd's table must cover them.
constexpr std::size_t kHostFieldsUsed = offsetof(duet_host_t, metric_set) + sizeof(duet_host_t::metric_set);

template <class T>
struct Trampolines {
  static int init(const duet_host_t *host, duet_host_ctx_t *ctx, void **state) noexcept {
    if (!host || host->abi_major != DUET_ABI_MAJOR || host->struct_size < kHostFieldsUsed)
      return DUET_EINVAL;
    try {
      *state = new T(Host(host, ctx));
      return 0;
    } catch (const std::bad_alloc &) {
      return DUET_ENOMEM;
    } catch (const std::exception &e) {
      host->log(ctx, DUET_LOG_ERROR, (std::string("init failed: ") + e.what()).c_str());
      return DUET_EINVAL;
    } catch (...) {
      host->log(ctx, DUET_LOG_ERROR, "init failed: unknown exception");
      return DUET_EINVAL;
    }
  }
  static void shutdown(void *state) noexcept {
    try {
      delete static_cast<T *>(state);
    } catch (...) {
    }
  }
  static void on_open(void *state, std::uint64_t conn) noexcept {
    auto *p = static_cast<T *>(state);
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
    auto *p = static_cast<T *>(state);
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
    auto *p = static_cast<T *>(state);
    try {
      p->on_close(conn, reason);
    } catch (const std::exception &e) {
      p->report("on_close", e.what());
    } catch (...) {
      p->report("on_close", "unknown exception");
    }
  }
  static void on_event(void *state, const duet_event_t *event) noexcept {
    auto *p = static_cast<T *>(state);
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
template <class Base>
class Reporting final : public Base {
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

#define DUET_PLUGIN_DESCRIPTOR_(Class, name, version, description, options, commands)               \
  static const duet_plugin_t duet_plugin_descriptor_ = {                                            \
      DUET_ABI_MAJOR,                                                                               \
      DUET_ABI_MINOR,                                                                               \
      sizeof(duet_plugin_t),                                                                        \
      name,                                                                                         \
      version,                                                                                      \
      description,                                                                                  \
      &::duet::detail::Trampolines<::duet::Reporting<Class>>::init,                                 \
      &::duet::detail::Trampolines<::duet::Reporting<Class>>::shutdown,                             \
      &::duet::detail::Trampolines<::duet::Reporting<Class>>::on_open,                              \
      &::duet::detail::Trampolines<::duet::Reporting<Class>>::on_message,                           \
      &::duet::detail::Trampolines<::duet::Reporting<Class>>::on_close,                             \
      &::duet::detail::Trampolines<::duet::Reporting<Class>>::on_event,                             \
      options,                                                                                      \
      sizeof(duet_plugin_option_t),                                                                 \
      commands,                                                                                     \
  };

// In a static build (-Dplugins=static) duetd links the plugin in and finds it
// as duet_static_entry_<ident>; otherwise the module exports the versioned
// entry symbol and nothing else.
#if defined(DUET_PLUGIN_STATIC)
#define DUET_PLUGIN_ENTRY_(ident)                                           \
  extern "C" const duet_plugin_t *duet_static_entry_##ident(void) noexcept; \
  extern "C" const duet_plugin_t *duet_static_entry_##ident(void) noexcept { return &duet_plugin_descriptor_; }
#else
#define DUET_PLUGIN_ENTRY_(ident)                                                         \
  extern "C" DUET_PLUGIN_EXPORT const duet_plugin_t *duet_plugin_entry_v1(void) noexcept; \
  extern "C" DUET_PLUGIN_EXPORT const duet_plugin_t *duet_plugin_entry_v1(void) noexcept { \
    return &duet_plugin_descriptor_;                                                      \
  }
#endif

// ident is a C identifier naming the plugin in static builds (its name with
// '-' as '_'); options is a duet_plugin_option_t array or nullptr.
#define DUET_PLUGIN(ident, Class, name, version, description, options)         \
  DUET_PLUGIN_DESCRIPTOR_(Class, name, version, description, options, nullptr) \
  DUET_PLUGIN_ENTRY_(ident)
// The same, with a NULL-terminated array of pointers to the plugin's commands.
#define DUET_PLUGIN_WITH_COMMANDS(ident, Class, name, version, description, options, commands) \
  DUET_PLUGIN_DESCRIPTOR_(Class, name, version, description, options, commands)                \
  DUET_PLUGIN_ENTRY_(ident)

#endif  // DUET_PLUGIN_HPP

