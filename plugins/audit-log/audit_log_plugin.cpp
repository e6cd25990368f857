// The audit-log plugin: one JSON object per line (JSON Lines) for every
// connection accepted and closed, every open, pair and hang-up the pairing
// plugin reports, and every message duetd refused. It never records what
// peers say to each other (no SDP, no ICE), only that and how much.
//
// Records go to a bounded buffer of whole lines and reach the file from a
// timer (or when the buffer is half full), so the event loop never waits on
// a disk. A file that cannot be opened or written costs records, never
// calls: the server keeps serving, counts what it drops and says so in its
// log at most once a minute.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "duet/plugin.hpp"
#include "duet/utf8.h"
#include "line_buffer.hpp"

namespace {

using duet::audit::LineBuffer;
using Clock = std::chrono::steady_clock;

constexpr auto kWarningInterval = std::chrono::minutes(1);
// At exit a stdout reader that is slow gets this long to take the rest.
constexpr int kFinalFlushWaitMs = 2000;

const duet_plugin_option_t kOptions[] = {
    duet::option("path", "",
                 "FILE the audit records are appended to (JSON Lines); '-' is stdout, empty turns the log off; "
                 "SIGHUP reopens it",
                 "audit-log", "FILE"),
    duet::option("buffer-bytes", "1048576",
                 "records waiting for the file, at most this many bytes; more are dropped and counted"),
    duet::option("flush-ms", "200", "how often buffered records are written to the file, in milliseconds"),
    {},
};

// RFC 3339 in UTC with milliseconds: "2026-11-26T09:01:02.345Z".
std::string utc_timestamp() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  tm parts{};
  gmtime_r(&now.tv_sec, &parts);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1,
                parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, static_cast<int>(now.tv_nsec / 1000000));
  return text;
}

// Text from the network (a User-Agent header, say) need not be UTF-8; the
// writer would pass bad bytes through and make the line unreadable for
// strict JSON parsers, so each bad byte becomes U+FFFD.
std::string as_valid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const std::size_t length =
        duet_utf8_sequence_length(reinterpret_cast<const unsigned char *>(text.data()), text.size());
    if (length == 0) {
      out.append("\xEF\xBF\xBD");
      text.remove_prefix(1);
    } else {
      out.append(text.substr(0, length));
      text.remove_prefix(length);
    }
  }
  return out;
}

// U+2028, U+2029 and U+0085 (NEL) are valid in JSON strings but count as
// line breaks for JavaScript, Python's splitlines and other line-oriented
// tools, so a name holding one could still look like two lines there. The
// writer leaves them alone; in its output (valid UTF-8) these byte sequences
// can only be those characters inside strings, where their escapes mean the
// same.
std::string escape_unicode_line_breaks(std::string json) {
  struct Replacement {
    std::string_view bytes;
    std::string_view escape;
  };
  static constexpr Replacement kReplacements[] = {
      {"\xE2\x80\xA8", "\\u2028"},
      {"\xE2\x80\xA9", "\\u2029"},
      {"\xC2\x85", "\\u0085"},
  };
  for (const Replacement &r : kReplacements) {
    for (std::size_t at = json.find(r.bytes); at != std::string::npos; at = json.find(r.bytes, at + r.escape.size()))
      json.replace(at, r.bytes.size(), r.escape);
  }
  return json;
}

// One audit record: {"time":...,"event":...,"conn":...,<fields>}. The
// RapidJSON writer escapes quotes, backslashes and control characters
// (newlines included), so no value can end the line or the object early.
class Record {
public:
  Record(const char *event, duet::ConnId conn) : writer_(buffer_) {
    writer_.StartObject();
    text("time", utc_timestamp());
    text("event", event);
    number("conn", conn);
  }

  void text(const char *key, std::string_view value) {
    const std::string valid = as_valid_utf8(value);
    writer_.Key(key);
    writer_.String(valid.data(), static_cast<rapidjson::SizeType>(valid.size()), true);
  }
  void number(const char *key, std::uint64_t value) {
    writer_.Key(key);
    writer_.Uint64(value);
  }

  // Copies the member key of an event's JSON when it is a string (or, for
  // copy_number, an unsigned integer).
  void copy_text(const rapidjson::Value &from, const char *key) {
    const auto member = from.FindMember(key);
    if (member != from.MemberEnd() && member->value.IsString())
      text(key, {member->value.GetString(), member->value.GetStringLength()});
  }
  void copy_number(const rapidjson::Value &from, const char *key) {
    const auto member = from.FindMember(key);
    if (member != from.MemberEnd() && member->value.IsUint64())
      number(key, member->value.GetUint64());
  }

  std::string line() {
    writer_.EndObject();
    return escape_unicode_line_breaks(std::string(buffer_.GetString(), buffer_.GetSize()));
  }

private:
  rapidjson::StringBuffer buffer_;
  rapidjson::Writer<rapidjson::StringBuffer> writer_;
};

// The object an event carries; an empty object when it has none or it does
// not parse (the record then holds what the event name and conn say).
rapidjson::Document event_object(const duet_event_t &event) {
  rapidjson::Document doc;
  if (event.json)
    doc.Parse<rapidjson::kParseValidateEncodingFlag>(event.json, event.json_len);
  if (!event.json || doc.HasParseError() || !doc.IsObject())
    doc.SetObject();
  return doc;
}

std::string error_text(int error) { return std::strerror(error); }

class AuditLog : public duet::Plugin {
public:
  static constexpr duet_stage_t kStage = DUET_STAGE_OBSERVER;
  explicit AuditLog(const duet::Host &host)
      : Plugin(host), path_(host.options().text("path")),
        buffer_(static_cast<std::size_t>(host.options().integer("buffer-bytes", 4096, std::int64_t{1} << 30))),
        flush_ms_(static_cast<std::uint64_t>(host.options().integer("flush-ms", 1, 60000))) {
    if (path_.empty())
      return;
    written_metric_ =
        host.metric("audit_records_written_total", "Audit records written to the audit log", DUET_METRIC_COUNTER);
    dropped_metric_ = host.metric("audit_records_dropped_total",
                                  "Audit records lost: the file could not be opened or written, or the buffer was full",
                                  DUET_METRIC_COUNTER);
    // A missing folder or an unwritable file is only a warning, not a
    // reason to refuse to start: the audit log serves the operator, the
    // calls serve the users, and losing every call over a log file is the
    // worse trade. Records are dropped (and counted) until the file opens;
    // every flush tries again.
    if (!open_file())
      report(true);
    try {
      const std::chrono::milliseconds every(flush_ms_);
      flush_timer_ = host.start_timer(every, every, [this] { flush(); });
    } catch (...) {
      close_file();
      throw;
    }
  }

  ~AuditLog() override {
    if (path_.empty())
      return;
    flush_timer_.stop();
    flush_at_exit();
    close_file();
  }

  void on_open(duet::ConnId conn) override {
    if (path_.empty())
      return;
    Record record("accepted", conn);
    duet_conn_info_t info{};
    if (host().conn_info(conn, info)) {
      record.text("remote_addr", bounded(info.remote_addr, sizeof info.remote_addr));
      record.number("remote_port", info.remote_port);
      record.text("user_agent", bounded(info.user_agent, sizeof info.user_agent));
      record.text("tls_version", bounded(info.tls_version, sizeof info.tls_version));
    }
    add(record.line());
  }

  void on_close(duet::ConnId conn, duet_close_reason_t why) override {
    if (path_.empty())
      return;
    Record record("closed", conn);
    record.text("reason", duet_close_reason_name(why));
    add(record.line());
  }

  void on_event(const duet_event_t &event) override {
    if (path_.empty() || !event.name)
      return;
    const std::string_view name = event.name;
    if (name == "duet.reload") {
      reopen();
      return;
    }
    if (name == "pairing.open")
      add_event_record("open", event, {"local", "remote"}, {});
    else if (name == "pairing.paired")
      add_event_record("paired", event, {"offerer", "answerer"}, {"offerer_conn", "answerer_conn"});
    else if (name == "pairing.unpaired")
      add_event_record("unpaired", event, {"local", "remote", "reason"}, {"duration_ms", "sdp", "ice", "partner_conn"});
    else if (name == "duet.rejected")
      add_event_record("rejected", event, {"code"}, {});
  }

private:
  // A record of kind for event with the named members of its JSON: strings
  // first, then unsigned numbers. Naming what to copy, rather than copying
  // all but some, keeps anything else an event may carry out of the file.
  void add_event_record(const char *kind, const duet_event_t &event, std::initializer_list<const char *> texts,
                        std::initializer_list<const char *> numbers) {
    const rapidjson::Document fields = event_object(event);
    Record record(kind, event.conn);
    for (const char *key : texts)
      record.copy_text(fields, key);
    for (const char *key : numbers)
      record.copy_number(fields, key);
    add(record.line());
  }

private:
  static std::string_view bounded(const char *text, std::size_t size) { return {text, strnlen(text, size)}; }

  void add(const std::string &line) {
    if (buffer_.append(line)) {
      if (buffer_.past_half())
        flush();
      return;
    }
    // The file may take bytes again before the timer notices (a reader
    // that caught up): try it once before losing the record.
    flush();
    if (buffer_.append(line))
      return;
    count_dropped(1);
    if (line.size() >= buffer_.capacity_bytes())
      problem_ = "an audit record of " + std::to_string(line.size() + 1) +
                 " bytes is larger than the whole buffer; raise " + "audit-log.buffer-bytes";
    else
      problem_ = "the audit log buffer (" + std::to_string(buffer_.capacity_bytes()) + " bytes) is full because " +
                 path_ + " takes records too slowly; raise audit-log.buffer-bytes or check what reads it";
  }

  // Writes what is buffered. A file that fails costs what was buffered for
  // it: keeping those records for a disk that stays full would only make
  // newer ones wait and then drop instead, and the operator should see the
  // loss at once rather than a megabyte later.
  void flush() {
    if (buffer_.empty()) {
      report(false);
      return;
    }
    if (fd_ < 0 && !open_file()) {
      count_dropped(buffer_.discard());
      report(false);
      return;
    }
    const duet::audit::FlushResult result = buffer_.flush_to(fd_, write_call_);
    count_written(result.lines_written);
    if (result.error != 0 && result.error != EAGAIN) {
      problem_ = "cannot write the audit log " + path_ + ": " + error_text(result.error);
      count_dropped(buffer_.discard());
      // Reopening at the next flush also recovers from a file that was
      // replaced or a descriptor that went bad.
      close_file();
    } else if (result.error == 0 && problem_logged_) {
      problem_logged_ = false;
      host().log(DUET_LOG_INFO, "writing the audit log " + path_ + " again");
    }
    report(false);
  }

  // At exit everything buffered goes out; a reader of stdout that is slow
  // gets a bounded wait, never an endless one.
  void flush_at_exit() {
    exiting_ = true;
    const auto deadline = Clock::now() + std::chrono::milliseconds(kFinalFlushWaitMs);
    flush();
    while (!buffer_.empty() && fd_ >= 0 && Clock::now() < deadline) {
      pollfd writable{fd_, POLLOUT, 0};
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      const int ready = poll(&writable, 1, static_cast<int>(left.count()) + 1);
      if (ready < 0 && errno == EINTR)
        continue;
      if (ready <= 0)
        break;
      flush();
    }
    if (!buffer_.empty()) {
      count_dropped(buffer_.discard());
      problem_ = "duetd is exiting and " + path_ + " did not take the last audit records";
    }
    report(true);
  }

  // SIGHUP (logrotate): what was buffered goes to the old file, then the
  // same path is opened anew, created if the rotation moved it away.
  void reopen() {
    flush();
    if (path_ == "-")
      return;
    count_dropped(buffer_.drop_unfinished_line());
    close_file();
    if (open_file())
      host().log(DUET_LOG_INFO, "reopened the audit log " + path_);
    else
      report(true);
  }

  bool open_file() {
    if (path_ == "-") {
      // An open file description of our own for whatever stdout is lets the
      // writes be non-blocking without changing fd 1, which the process
      // that started duetd may share. Linux offers that through /proc for
      // files, pipes and terminals; a socket (journald's stream) cannot be
      // opened there, and its duplicate is written with MSG_DONTWAIT
      // instead. Elsewhere a pipe or terminal is written blocking.
      fd_ = ::open("/proc/self/fd/1", O_WRONLY | O_APPEND | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
      if (fd_ < 0)
        fd_ = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    } else {
      // O_NONBLOCK matters for a FIFO (no waiting for a reader) and is
      // harmless for a regular file.
      fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0640);
    }
    if (fd_ >= 0) {
      struct stat facts {};
      write_call_ = fstat(fd_, &facts) == 0 && S_ISSOCK(facts.st_mode) ? duet::audit::WriteCall::kSendDontWait
                                                                       : duet::audit::WriteCall::kWrite;
      return true;
    }
    const int error = errno;
    problem_ = "cannot open the audit log " + (path_ == "-" ? std::string("on stdout") : path_) + ": " +
               error_text(error) +
               (error == ENOENT                     ? " (create its folder or set another audit-log.path)"
                : error == EACCES || error == EROFS ? " (let duetd's user write there or set another audit-log.path)"
                                                    : "");
    return false;
  }

  void close_file() {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }

  void count_written(std::size_t lines) {
    if (lines > 0 && written_metric_ > 0)
      host().metric_add(written_metric_, static_cast<std::int64_t>(lines));
  }

  void count_dropped(std::size_t lines) {
    if (lines == 0)
      return;
    dropped_total_ += lines;
    dropped_unreported_ += lines;
    if (dropped_metric_ > 0)
      host().metric_add(dropped_metric_, static_cast<std::int64_t>(lines));
  }

  // Logs the latest problem and the records lost since the last warning,
  // at most once a minute (unless now is set: startup, SIGHUP and exit are
  // rare enough), so a broken disk cannot flood the log.
  void report(bool now) {
    if (problem_.empty() && dropped_unreported_ == 0)
      return;
    const Clock::time_point time = Clock::now();
    if (!now && last_warning_ && time - *last_warning_ < kWarningInterval)
      return;
    std::string message = problem_.empty() ? "audit log " + path_ : problem_;
    if (dropped_unreported_ > 0)
      message += "; dropped " + std::to_string(dropped_unreported_) + " audit record(s) since the last warning (" +
                 std::to_string(dropped_total_) + " in all)";
    if (!exiting_)
      message += "; calls keep working and duetd keeps retrying every " + std::to_string(flush_ms_) + " ms";
    host().log(DUET_LOG_WARN, message);
    last_warning_ = time;
    problem_logged_ = true;
    problem_.clear();
    dropped_unreported_ = 0;
  }

  const std::string path_;
  LineBuffer buffer_;
  const std::uint64_t flush_ms_;
  int fd_ = -1;
  duet::audit::WriteCall write_call_ = duet::audit::WriteCall::kWrite;
  duet::Timer flush_timer_;
  std::int64_t written_metric_ = 0;
  std::int64_t dropped_metric_ = 0;
  std::uint64_t dropped_total_ = 0;
  std::uint64_t dropped_unreported_ = 0;
  std::string problem_;
  bool problem_logged_ = false;
  bool exiting_ = false;
  std::optional<Clock::time_point> last_warning_;
};

}  // namespace

DUET_PLUGIN(audit_log, AuditLog, "audit-log", "1.0.0",
            "Appends a JSON line per connection, pairing, hang-up and refusal to a file (never SDP or ICE content)",
            kOptions)
