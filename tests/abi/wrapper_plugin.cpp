// A third-party plugin built on duet/plugin.hpp alone, to check what the
// C++ wrapper promises against the real duetd (test_plugin_abi):
// - init: a bad option value makes duetd exit 2 with the wrapper's message;
//   --plugin-opt test-wrapper.init=environment (a duet::EnvironmentError)
//   or init=runtime (a std::runtime_error) make it exit 1;
// - {"wrapper-throw":...}: a timer whose callback throws; duetd logs it and
//   keeps serving, and the next timer's {"after":1} arrives;
// - {"wrapper-stop-inside":...}: a repeating timer that destroys its own
//   Timer in its callback and so fires once: {"stopped":1}.
#include <memory>
#include <stdexcept>
#include <string>

#include <duet/plugin.hpp>

namespace {

enum class Init { kOk, kEnvironment, kRuntime };

const duet_plugin_option_t kOptions[] = {
    duet::option("number", "5", "a whole number from 1 to 10"),
    duet::option("delay", "10ms", "how long the timers wait"),
    duet::option("loud", "false", "a boolean"),
    duet::option("init", "ok", "ok, environment or runtime: how init ends"),
    {},
};

class Wrapper : public duet::Plugin {
 public:
  explicit Wrapper(const duet::Host &host)
      : Plugin(host),
        number_(host.options().integer("number", 1, 10)),
        delay_(host.options().duration("delay", std::chrono::milliseconds(1), std::chrono::seconds(1))),
        loud_(host.options().boolean("loud")) {
    switch (host.options().one_of<Init>(
        "init", {{"ok", Init::kOk}, {"environment", Init::kEnvironment}, {"runtime", Init::kRuntime}})) {
    case Init::kEnvironment:
      throw duet::EnvironmentError("the test says the environment failed");
    case Init::kRuntime:
      throw std::runtime_error("the test throws a plain runtime_error");
    case Init::kOk:
      break;
    }
    host.log(DUET_LOG_INFO, "number " + std::to_string(number_) + (loud_ ? ", loud" : ""));
  }

  duet_verdict_t on_message(duet::ConnId conn, const duet::Message &msg, duet_reject_t &) override {
    if (msg.type() == "wrapper-throw") {
      throwing_ = host().start_timer(delay_, {}, [] { throw std::runtime_error("boom from a timer"); });
      after_ = host().start_timer(delay_ * 5, {}, [this, conn] { host().send(conn, R"({"after":1})"); });
      return DUET_HANDLED;
    }
    if (msg.type() == "wrapper-stop-inside") {
      fired_ = 0;
      repeating_ = std::make_unique<duet::Timer>(host().start_timer(delay_, delay_, [this, conn] {
        fired_++;
        repeating_.reset();  // destroys the Timer whose callback this is
        host().send(conn, R"({"stopped":)" + std::to_string(fired_) + "}");
      }));
      // A later timer proves the repeating one stopped: no second "stopped".
      after_ = host().start_timer(delay_ * 10, {}, [this, conn] { host().send(conn, R"({"after":1})"); });
      return DUET_HANDLED;
    }
    return DUET_PASS;
  }

 private:
  std::int64_t number_;
  std::chrono::milliseconds delay_;
  bool loud_;
  int fired_ = 0;
  duet::Timer throwing_, after_;
  std::unique_ptr<duet::Timer> repeating_;
};

}  // namespace

DUET_PLUGIN(test_wrapper, Wrapper, "test-wrapper", "0.0.1", "checks the C++ wrapper (test plugin)", kOptions)
