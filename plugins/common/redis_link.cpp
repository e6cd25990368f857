#include "redis_link.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <memory>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

namespace duet::cluster {

namespace {
constexpr std::chrono::milliseconds kMaxBackoff{5000};
constexpr std::chrono::milliseconds kConnectTimeout{2000};
constexpr std::chrono::milliseconds kTick{1000};
// A PING unanswered this long means the link is dead even if TCP says not.
constexpr std::chrono::milliseconds kPingTimeout{3000};

int parse_int(std::string_view text, const char *what, std::string_view url) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0)
    throw OptionError("--cluster " + std::string(url) + ": the " + what + " must be a number");
  return value;
}
}  // namespace

std::string RedisTarget::describe() const {
  if (!unix_path.empty())
    return "unix://" + unix_path;
  return "redis://" + host + ":" + std::to_string(port) + (db ? "/" + std::to_string(db) : "");
}

RedisTarget parse_redis_url(std::string_view url) {
  RedisTarget t;
  const std::string usage = " (expected redis://[:PASSWORD@]HOST:PORT[/DB] or unix:///PATH)";
  if (url.rfind("unix://", 0) == 0) {
    t.unix_path = std::string(url.substr(7));
    if (t.unix_path.empty() || t.unix_path[0] != '/')
      throw OptionError("--cluster " + std::string(url) + ": a unix socket needs an absolute path" + usage);
    return t;
  }
  if (url.rfind("redis://", 0) != 0)
    throw OptionError("--cluster " + std::string(url) + ": unknown scheme" + usage);
  std::string_view rest = url.substr(8);
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view auth = rest.substr(0, at);
    if (auto colon = auth.find(':'); colon != std::string_view::npos)
      auth = auth.substr(colon + 1);  // a user name before it is ignored (Redis 5 has none)
    t.password = std::string(auth);
    rest = rest.substr(at + 1);
  }
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    if (slash + 1 < rest.size())
      t.db = parse_int(rest.substr(slash + 1), "database", url);
    rest = rest.substr(0, slash);
  }
  std::string_view host = rest;
  if (!rest.empty() && rest[0] == '[') {  // [::1]:6379
    auto close = rest.find(']');
    if (close == std::string_view::npos)
      throw OptionError("--cluster " + std::string(url) + ": unclosed [ in the host" + usage);
    host = rest.substr(1, close - 1);
    rest = rest.substr(close + 1);
    if (!rest.empty() && rest[0] == ':')
      t.port = parse_int(rest.substr(1), "port", url);
  } else if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    t.port = parse_int(rest.substr(colon + 1), "port", url);
  }
  if (host.empty())
    throw OptionError("--cluster " + std::string(url) + ": no host" + usage);
  if (t.port < 1 || t.port > 65535)
    throw OptionError("--cluster " + std::string(url) + ": the port must be 1-65535");
  t.host = std::string(host);
  return t;
}

RedisTarget redis_target(const duet::Options &options) {
  RedisTarget target = parse_redis_url(options.text("cluster"));
  if (auto file = options.text("cluster-password-file"); !file.empty()) {
    std::ifstream in{file};
    if (!in || !std::getline(in, target.password) || target.password.empty())
      options.fail("cluster-password-file", file, "must hold the Redis password on its first line");
  }
  return target;
}

RedisLink::RedisLink(const duet::Host &host, RedisTarget target, std::string name, Events events)
    : host_(host), target_(std::move(target)), name_(std::move(name)), events_(std::move(events)) {
  tick_ = host_.start_timer(kTick, kTick, [this] { watchdog(); });
}

RedisLink::~RedisLink() {
  events_ = {};  // nobody to tell any more
  if (redisAsyncContext *ac = ac_) {
    ac_ = nullptr;
    ac->data = nullptr;
    redisAsyncFree(ac);  // runs every pending reply with nullptr
  }
  if (watch_)
    host_.fd_watch_stop(watch_);
}

void RedisLink::connect() {
  redisAsyncContext *ac = target_.unix_path.empty() ? redisAsyncConnect(target_.host.c_str(), target_.port)
                                                    : redisAsyncConnectUnix(target_.unix_path.c_str());
  if (!ac || ac->err) {
    host_.log(DUET_LOG_WARN, "cluster: cannot connect to " + target_.describe() + ": " +
                                 (ac ? ac->errstr : "out of memory") + "; trying again");
    if (ac)
      redisAsyncFree(ac);
    schedule_reconnect();
    return;
  }
  ac_ = ac;
  ac->data = this;
  ac->ev.data = this;
  ac->ev.addRead = [](void *p) { static_cast<RedisLink *>(p)->want(DUET_FD_READ, true); };
  ac->ev.delRead = [](void *p) { static_cast<RedisLink *>(p)->want(DUET_FD_READ, false); };
  ac->ev.addWrite = [](void *p) { static_cast<RedisLink *>(p)->want(DUET_FD_WRITE, true); };
  ac->ev.delWrite = [](void *p) { static_cast<RedisLink *>(p)->want(DUET_FD_WRITE, false); };
  ac->ev.cleanup = [](void *p) {
    auto *self = static_cast<RedisLink *>(p);
    self->wanted_ = 0;
    if (self->watch_)
      self->host_.fd_watch_stop(self->watch_);
    self->watch_ = 0;
  };
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  // Now: hiredis asks for write readiness already when given the connect callback.
  watch_ = host_.fd_watch(ac->c.fd, wanted_, on_ready, this);
  connect_started_ = std::chrono::steady_clock::now();
  // hiredis 0.14 finishes connecting on the first write: AUTH or SELECT or
  // a PING is that write, and its answer says the link is ready.
  auto after = [this](const redisReply *r) {
    if (!r)
      return;
    if (r->type == REDIS_REPLY_ERROR) {
      std::string why = std::string("Redis refused the set-up: ") + std::string(r->str, r->len);
      if (why.find("NOAUTH") != std::string::npos || why.find("WRONGPASS") != std::string::npos ||
          why.find("invalid password") != std::string::npos || why.find("AUTH") != std::string::npos)
        why = "authentication failed (check --cluster-password-file or the password in --cluster): " +
              std::string(r->str, r->len);
      drop(why.c_str());
      return;
    }
    setup_done();
  };
  if (!target_.password.empty())
    send({"AUTH", target_.password}, new Reply(target_.db ? Reply([](const redisReply *) {}) : after), on_reply);
  if (target_.db)
    send({"SELECT", std::to_string(target_.db)}, new Reply(after), on_reply);
  else if (target_.password.empty())
    send({"PING"}, new Reply(after), on_reply);
}

void RedisLink::setup_done() {
  if (!ac_ || ready_)
    return;
  ready_ = true;
  backoff_ = std::chrono::milliseconds(100);
  if (was_up_)
    reconnects_++;
  was_up_ = true;
  if (!channel_.empty()) {
    const char *argv[] = {"SUBSCRIBE", channel_.c_str()};
    std::size_t lens[] = {9, channel_.size()};
    redisAsyncCommandArgv(ac_, on_message, this, 2, argv, lens);
    subscribed_ = true;
  }
  if (events_.up)
    events_.up();
}

void RedisLink::want(std::uint32_t what, bool on) {
  std::uint32_t wanted = on ? wanted_ | what : wanted_ & ~what;
  if (wanted != wanted_ && watch_)
    host_.fd_watch_set(watch_, wanted);
  wanted_ = wanted;
}

void RedisLink::on_ready(void *p, std::uint32_t ready) {
  auto *self = static_cast<RedisLink *>(p);
  // Each handler may free the context (a disconnect): look again after it.
  if (self->ac_ && (ready & (DUET_FD_READ | DUET_FD_ERROR)))
    redisAsyncHandleRead(self->ac_);
  if (self->ac_ && (ready & (DUET_FD_WRITE | DUET_FD_ERROR)))
    redisAsyncHandleWrite(self->ac_);
}

void RedisLink::on_connect(const redisAsyncContext *ac, int status) {
  auto *self = static_cast<RedisLink *>(ac->data);
  if (!self || status == REDIS_OK)
    return;
  // hiredis frees the context after this callback.
  self->ac_ = nullptr;
  self->host_.log(DUET_LOG_WARN,
                  "cluster: cannot connect to " + self->target_.describe() + ": " + ac->errstr + "; trying again");
  self->ready_ = self->subscribed_ = false;
  self->schedule_reconnect();
}

void RedisLink::on_disconnect(const redisAsyncContext *ac, int status) {
  auto *self = static_cast<RedisLink *>(ac->data);
  if (!self)
    return;
  self->ac_ = nullptr;  // hiredis frees it after this callback
  bool was_ready = self->ready_;
  self->ready_ = self->subscribed_ = self->ping_out_ = false;
  if (status != REDIS_OK || was_ready)
    self->host_.log(DUET_LOG_WARN, "cluster: lost the link to " + self->target_.describe() + " (" + self->name_ +
                                       "): " + (ac->errstr[0] ? ac->errstr : "closed") + "; reconnecting");
  self->schedule_reconnect();
  if (was_ready && self->events_.down)
    self->events_.down();
}

void RedisLink::drop(const char *why) {
  redisAsyncContext *ac = ac_;
  if (!ac)
    return;
  host_.log(DUET_LOG_WARN, "cluster: " + name_ + " link to " + target_.describe() + ": " + why + "; reconnecting");
  ac_ = nullptr;
  ac->data = nullptr;
  bool was_ready = ready_;
  ready_ = subscribed_ = ping_out_ = false;
  redisAsyncFree(ac);  // pending replies run with nullptr
  schedule_reconnect();
  if (was_ready && events_.down)
    events_.down();
}

void RedisLink::schedule_reconnect() {
  retry_ = host_.start_timer(backoff_, {}, [this] { connect(); });
  backoff_ = std::min(backoff_ * 2, kMaxBackoff);
}

void RedisLink::watchdog() {
  auto now = std::chrono::steady_clock::now();
  if (ac_ && !ready_ && now - connect_started_ > kConnectTimeout) {
    drop("no answer to connect in 2 s");
    return;
  }
  if (!ready_ || subscribed_)
    return;  // a subscribed link cannot PING in RESP2: it hears of a dead Redis from the socket
  if (ping_out_) {
    if (now - ping_sent_ > kPingTimeout)
      drop("no answer to PING in 3 s");
    return;
  }
  ping_out_ = true;
  ping_sent_ = now;
  command({"PING"}, [this](const redisReply *r) {
    if (!r)
      return;
    ping_out_ = false;
    rtt_us_ = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - ping_sent_).count());
  });
}

bool RedisLink::send(const std::vector<std::string_view> &args, Reply *owned,
                     void (*fn)(redisAsyncContext *, void *, void *)) {
  std::vector<const char *> argv;
  std::vector<std::size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (auto a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  if (!ac_ ||
      redisAsyncCommandArgv(ac_, fn, owned, static_cast<int>(argv.size()), argv.data(), lens.data()) != REDIS_OK) {
    delete owned;
    return false;
  }
  return true;
}

bool RedisLink::command(const std::vector<std::string_view> &args, Reply reply) {
  if (!ready_)
    return false;
  return send(args, new Reply(std::move(reply)), on_reply);
}

bool RedisLink::command(std::string_view verb, const std::vector<std::string> &args, Reply reply) {
  std::vector<std::string_view> argv{verb};
  argv.insert(argv.end(), args.begin(), args.end());
  return command(argv, std::move(reply));
}

void RedisLink::subscribe(std::string channel, std::function<void(std::string_view)> on_message) {
  channel_ = std::move(channel);
  on_message_ = std::move(on_message);
}

void RedisLink::on_reply(redisAsyncContext *, void *reply, void *privdata) {
  std::unique_ptr<Reply> fn(static_cast<Reply *>(privdata));
  if (fn && *fn)
    (*fn)(static_cast<const redisReply *>(reply));
}

void RedisLink::on_message(redisAsyncContext *ac, void *reply, void *privdata) {
  auto *self = static_cast<RedisLink *>(privdata);
  auto *r = static_cast<const redisReply *>(reply);
  if (!r || !ac->data || r->type != REDIS_REPLY_ARRAY || r->elements != 3)
    return;
  const redisReply *kind = r->element[0], *payload = r->element[2];
  if (kind->type == REDIS_REPLY_STRING && std::string_view(kind->str, kind->len) == "message" &&
      payload->type == REDIS_REPLY_STRING && self->on_message_)
    self->on_message_(std::string_view(payload->str, payload->len));
}

}  // namespace duet::cluster
