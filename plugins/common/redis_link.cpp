#include "redis_link.hpp"

#include "redis_sentinel.hpp"

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

std::string RedisEndpoint::describe() const {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string RedisTarget::describe() const {
  if (!unix_path.empty())
    return "unix://" + unix_path;
  std::string db_part = db ? "/" + std::to_string(db) : "";
  if (via_sentinels()) {
    std::string list;
    for (const RedisEndpoint &s : sentinels)
      list += (list.empty() ? "" : ",") + s.describe();
    return "redis-sentinel://" + list + "/" + master_name + db_part;
  }
  return "redis://" + RedisEndpoint{host, port}.describe() + db_part;
}

namespace {
const char *const kUsage = " (expected redis://[:PASSWORD@]HOST:PORT[/DB], unix:///PATH or "
                           "redis-sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER[/DB])";

// HOST:PORT or [V6]:PORT (the port defaults to default_port).
RedisEndpoint parse_endpoint(std::string_view text, int default_port, std::string_view url) {
  RedisEndpoint e;
  e.port = default_port;
  std::string_view host = text;
  if (!text.empty() && text[0] == '[') {  // [::1]:6379
    auto close = text.find(']');
    if (close == std::string_view::npos)
      throw OptionError("--cluster " + std::string(url) + ": unclosed [ in the host" + kUsage);
    host = text.substr(1, close - 1);
    text = text.substr(close + 1);
    if (!text.empty() && text[0] == ':')
      e.port = parse_int(text.substr(1), "port", url);
  } else if (auto colon = text.rfind(':'); colon != std::string_view::npos) {
    host = text.substr(0, colon);
    e.port = parse_int(text.substr(colon + 1), "port", url);
  }
  if (host.empty())
    throw OptionError("--cluster " + std::string(url) + ": no host" + kUsage);
  if (e.port < 1 || e.port > 65535)
    throw OptionError("--cluster " + std::string(url) + ": the port must be 1-65535");
  e.host = std::string(host);
  return e;
}
}  // namespace

RedisTarget parse_redis_url(std::string_view url) {
  RedisTarget t;
  if (url.rfind("unix://", 0) == 0) {
    t.unix_path = std::string(url.substr(7));
    if (t.unix_path.empty() || t.unix_path[0] != '/')
      throw OptionError("--cluster " + std::string(url) + ": a unix socket needs an absolute path" + kUsage);
    return t;
  }
  const bool sentinel = url.rfind("redis-sentinel://", 0) == 0;
  if (!sentinel && url.rfind("redis://", 0) != 0)
    throw OptionError("--cluster " + std::string(url) + ": unknown scheme" + kUsage);
  std::string_view rest = url.substr(sentinel ? 17 : 8);
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view auth = rest.substr(0, at);
    if (auto colon = auth.find(':'); colon != std::string_view::npos)
      auth = auth.substr(colon + 1);  // a user name before it is ignored (Redis 5 has none)
    t.password = std::string(auth);
    rest = rest.substr(at + 1);
  }
  std::string_view path;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    path = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  if (sentinel) {
    // /MASTER[/DB]: the name the sentinels monitor the master under.
    std::string_view name = path.substr(0, path.find('/'));
    if (name.empty())
      throw OptionError("--cluster " + std::string(url) + ": no master name after the sentinels" + kUsage);
    t.master_name = std::string(name);
    path = name.size() < path.size() ? path.substr(name.size() + 1) : std::string_view();
    while (!rest.empty()) {
      auto comma = rest.find(',');
      t.sentinels.push_back(parse_endpoint(rest.substr(0, comma), 26379, url));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (comma != std::string_view::npos && rest.empty())
        throw OptionError("--cluster " + std::string(url) + ": an empty sentinel after a comma" + kUsage);
    }
    if (t.sentinels.empty())
      throw OptionError("--cluster " + std::string(url) + ": no sentinel" + kUsage);
  } else {
    RedisEndpoint e = parse_endpoint(rest, 6379, url);
    t.host = e.host;
    t.port = e.port;
  }
  if (!path.empty())
    t.db = parse_int(path, "database", url);
  return t;
}

RedisTarget redis_target(const duet::Options &options) {
  RedisTarget target = parse_redis_url(options.text("cluster"));
  if (auto file = options.text("cluster-password-file"); !file.empty()) {
    std::ifstream in{file};
    if (!in || !std::getline(in, target.password) || target.password.empty())
      options.fail("cluster-password-file", file, "must hold the Redis password on its first line");
  }
  if (auto file = options.text("cluster-sentinel-password-file"); !file.empty()) {
    if (!target.via_sentinels())
      options.refuse("cluster-sentinel-password-file",
                     "--cluster-sentinel-password-file is for sentinels: it needs --cluster redis-sentinel://...");
    std::ifstream in{file};
    if (!in || !std::getline(in, target.sentinel_password) || target.sentinel_password.empty())
      options.fail("cluster-sentinel-password-file", file, "must hold the sentinels' password on its first line");
  }
  return target;
}

void watch_sentinels(const duet::Host &host, RedisTarget &target) {
  if (target.via_sentinels() && !target.watch)
    target.watch = std::make_shared<Sentinels>(host, target);
}

RedisLink::RedisLink(const duet::Host &host, RedisTarget target, std::string name, Events events)
    : host_(host), target_(std::move(target)), name_(std::move(name)), events_(std::move(events)) {
  tick_ = host_.start_timer(kTick, kTick, [this] { watchdog(); });
  watch_sentinels(host_, target_);
  if (target_.watch)
    listening_ = target_.watch->listen([this] { master_moved(); });
}

RedisLink::~RedisLink() {
  events_ = {};  // nobody to tell any more
  if (target_.watch)
    target_.watch->unlisten(listening_);
  if (redisAsyncContext *ac = ac_) {
    ac_ = nullptr;
    ac->data = nullptr;
    redisAsyncFree(ac);  // runs every pending reply with nullptr
  }
  if (watch_)
    host_.fd_watch_stop(watch_);
}

std::string RedisLink::where() const {
  if (target_.via_sentinels())
    return "master " + target_.master_name + " at " + at_.describe() + " (" + target_.describe() + ")";
  return target_.describe();
}

void RedisLink::connect() {
  if (target_.via_sentinels()) {
    const RedisEndpoint *master = target_.watch->master();
    if (!master) {
      if (!told_no_master_)
        host_.log(DUET_LOG_WARN, "cluster: no sentinel of " + target_.describe() + " has named master " +
                                     target_.master_name + " yet; asking again");
      told_no_master_ = true;
      schedule_reconnect();
      return;
    }
    told_no_master_ = false;
    at_ = *master;
  }
  const std::string &host = target_.via_sentinels() ? at_.host : target_.host;
  const int port = target_.via_sentinels() ? at_.port : target_.port;
  redisAsyncContext *ac = target_.unix_path.empty() ? redisAsyncConnect(host.c_str(), port)
                                                    : redisAsyncConnectUnix(target_.unix_path.c_str());
  if (!ac || ac->err) {
    failed_to_connect(ac ? ac->errstr : "out of memory");
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
  set_up();
}

// hiredis 0.14 finishes connecting on the first write: the set-up's first
// command is that write, and the answer to its last says the link is ready.
void RedisLink::set_up() {
  auto refused = [this](const redisReply *r) {
    if (!r || r->type != REDIS_REPLY_ERROR)
      return false;
    std::string why = std::string("Redis refused the set-up: ") + std::string(r->str, r->len);
    if (why.find("NOAUTH") != std::string::npos || why.find("WRONGPASS") != std::string::npos ||
        why.find("invalid password") != std::string::npos || why.find("AUTH") != std::string::npos)
      why = std::string("authentication failed (check ") +
            (name_.rfind("sentinel", 0) == 0 ? "--cluster-sentinel-password-file"
                                             : "--cluster-password-file or the password in --cluster") +
            "): " + std::string(r->str, r->len);
    drop(why.c_str());
    return true;
  };
  auto step = [refused](const redisReply *r) { refused(r); };
  if (!target_.password.empty())
    send({"AUTH", target_.password}, new Reply(step), on_reply);
  if (target_.db)
    send({"SELECT", std::to_string(target_.db)}, new Reply(step), on_reply);
  // A name in CLIENT LIST says which link a connection is; a Redis that
  // forbids CLIENT (some managed ones) is no reason to fail.
  const std::string client_name = "duet-" + name_;
  send({"CLIENT", "SETNAME", client_name}, new Reply([](const redisReply *) {}), on_reply);
  if (!target_.via_sentinels()) {
    send({"PING"}, new Reply([this, refused](const redisReply *r) {
           if (r && !refused(r))
             setup_done();
         }),
         on_reply);
    return;
  }
  // What a sentinel named may be a replica by now: write to a master only.
  send({"ROLE"}, new Reply([this, refused](const redisReply *r) {
         if (!r || refused(r))
           return;
         std::string_view role;
         if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->type == REDIS_REPLY_STRING)
           role = std::string_view(r->element[0]->str, r->element[0]->len);
         if (role == "master")
           setup_done();
         else
           drop(("it is not the master (ROLE: " + std::string(role.empty() ? "no answer" : role) + ")").c_str());
       }),
       on_reply);
}

void RedisLink::master_moved() {
  const RedisEndpoint *master = target_.watch->master();
  if (!master || *master == at_)
    return;
  if (ac_) {
    drop(("the sentinels name a new master, " + master->describe()).c_str());
    return;
  }
  // Waiting out a back-off grown while the old master was gone: go now.
  backoff_ = std::chrono::milliseconds(100);
  retry_ = host_.start_timer(std::chrono::milliseconds(0), {}, [this] { connect(); });
}

// With sentinels, these answers mean the master moved (or is cut off from
// its replicas): find it again rather than fail every command.
void RedisLink::refused(const redisReply *r) {
  std::string_view error(r->str, r->len);
  if (target_.via_sentinels() && (error.rfind("READONLY", 0) == 0 || error.rfind("MASTERDOWN", 0) == 0))
    drop(("it answered " + std::string(error.substr(0, error.find(' '))) + ": not a master that takes writes").c_str());
}

// Once per outage, not once per attempt: the back-off tries up to 10 times a second.
void RedisLink::failed_to_connect(const char *why) {
  if (!told_failing_)
    host_.log(DUET_LOG_WARN,
              "cluster: cannot connect to " + where() + ": " + why + "; trying again (said once until it works)");
  told_failing_ = true;
}

void RedisLink::setup_done() {
  if (!ac_ || ready_)
    return;
  ready_ = true;
  told_failing_ = false;
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
  self->failed_to_connect(ac->errstr);
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
    self->host_.log(DUET_LOG_WARN, "cluster: lost the link to " + self->where() + " (" + self->name_ +
                                       "): " + (ac->errstr[0] ? ac->errstr : "closed") + "; reconnecting");
  self->schedule_reconnect();
  if (was_ready && self->events_.down)
    self->events_.down();
}

void RedisLink::drop(const char *why) {
  redisAsyncContext *ac = ac_;
  if (!ac)
    return;
  host_.log(DUET_LOG_WARN, "cluster: " + name_ + " link to " + where() + ": " + why + "; reconnecting");
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
  if (target_.watch)
    target_.watch->refresh();  // the master may have moved: the next attempt goes where they say
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

// Until each answer comes, duetd's exit waits (hold_exit): what the last
// closes of a shutdown or a drain decided must reach Redis, or the other
// nodes would believe those connections are still here.
bool RedisLink::command(const std::vector<std::string_view> &args, Reply reply) {
  if (!ready_)
    return false;
  auto *counted = new Reply([this, reply = std::move(reply)](const redisReply *r) {
    if (reply)
      reply(r);  // first: what it sends next keeps the exit held
    if (--awaiting_ == 0)
      host_.hold_exit(false);
  });
  if (!send(args, counted, on_reply))
    return false;
  if (awaiting_++ == 0)
    host_.hold_exit(true);
  return true;
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

void RedisLink::on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  std::unique_ptr<Reply> fn(static_cast<Reply *>(privdata));
  auto *r = static_cast<const redisReply *>(reply);
  if (fn && *fn)
    (*fn)(r);
  if (r && r->type == REDIS_REPLY_ERROR && ac->data)  // ac->data: the link is still ours
    static_cast<RedisLink *>(ac->data)->refused(r);
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
