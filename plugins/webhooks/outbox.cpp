#include "outbox.hpp"

#include <cerrno>
#include <cstring>
#include <string_view>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace duet::webhooks {

namespace {

// Compacting a small file is not worth a rewrite.
constexpr std::size_t kCompactAbove = 64 * 1024;

std::string event_line(const OutboxEvent &event) {
  rapidjson::StringBuffer out;
  rapidjson::Writer<rapidjson::StringBuffer> w(out);
  w.StartObject();
  w.Key("event");
  w.StartObject();
  w.Key("id");
  w.String(event.id.data(), static_cast<rapidjson::SizeType>(event.id.size()));
  w.Key("created_ms");
  w.Int64(event.created_ms);
  w.Key("body");
  w.RawValue(event.body.data(), event.body.size(), rapidjson::kObjectType);
  w.EndObject();
  w.EndObject();
  return std::string(out.GetString(), out.GetSize()) + "\n";
}

std::string delivered_line(const std::string &id) {
  rapidjson::StringBuffer out;
  rapidjson::Writer<rapidjson::StringBuffer> w(out);
  w.StartObject();
  w.Key("delivered");
  w.String(id.data(), static_cast<rapidjson::SizeType>(id.size()));
  w.EndObject();
  return std::string(out.GetString(), out.GetSize()) + "\n";
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool read_all(int fd, std::string &out) {
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return false;
    if (n == 0)
      return true;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

// Fills event from its line; false for a line that is not one.
bool parse_event(const rapidjson::Value &v, OutboxEvent &event) {
  if (!v.IsObject() || !v.HasMember("id") || !v["id"].IsString() || !v.HasMember("created_ms") ||
      !v["created_ms"].IsInt64() || !v.HasMember("body") || !v["body"].IsObject())
    return false;
  event.id = v["id"].GetString();
  event.created_ms = v["created_ms"].GetInt64();
  rapidjson::StringBuffer body;
  rapidjson::Writer<rapidjson::StringBuffer> w(body);
  v["body"].Accept(w);
  event.body.assign(body.GetString(), body.GetSize());
  return true;
}

}  // namespace

Outbox::Outbox(std::string path, int fd, int lock_fd, std::size_t max_bytes)
    : path_(std::move(path)), fd_(fd), lock_fd_(lock_fd), max_bytes_(max_bytes) {}

Outbox::~Outbox() {
  if (fd_ >= 0)
    ::close(fd_);
  ::close(lock_fd_);  // and with it the lock
}

std::unique_ptr<Outbox> Outbox::open(const std::string &path, std::size_t max_bytes, std::string &error) {
  const std::string lock_path = path + ".lock";
  const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0) {
    error = "cannot open " + lock_path + ": " + std::strerror(errno);
    return nullptr;
  }
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    error = errno == EWOULDBLOCK ? "another process holds the outbox " + path + " (give each duetd its own --state-dir)"
                                 : "cannot lock " + lock_path + ": " + std::strerror(errno);
    ::close(lock_fd);
    return nullptr;
  }
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = "cannot open " + path + ": " + std::strerror(errno);
    ::close(lock_fd);
    return nullptr;
  }
  std::unique_ptr<Outbox> box(new Outbox(path, fd, lock_fd, max_bytes));
  std::string text;
  if (::lseek(fd, 0, SEEK_SET) < 0 || !read_all(fd, text)) {
    error = "cannot read " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  // A last line a crash cut short is no record: cut it off the file too.
  const std::size_t whole = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  if (whole < text.size()) {
    if (::ftruncate(fd, static_cast<off_t>(whole)) != 0) {
      error = "cannot repair " + path + ": " + std::strerror(errno);
      return nullptr;
    }
    text.resize(whole);
  }
  std::size_t pending_bytes = 0;
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t end = text.find('\n', at) + 1;
    rapidjson::Document doc;
    doc.Parse(text.data() + at, end - at - 1);
    OutboxEvent event;
    if (!doc.HasParseError() && doc.IsObject() && doc.HasMember("event") && parse_event(doc["event"], event)) {
      event.stored_bytes = end - at;
      pending_bytes += event.stored_bytes;
      box->pending_.push_back(std::move(event));
    } else if (!doc.HasParseError() && doc.IsObject() && doc.HasMember("delivered") && doc["delivered"].IsString()) {
      const std::string id = doc["delivered"].GetString();
      for (auto it = box->pending_.begin(); it != box->pending_.end(); ++it)
        if (it->id == id) {
          pending_bytes -= it->stored_bytes;
          box->pending_.erase(it);
          break;
        }
    }
    at = end;
  }
  box->bytes_ = text.size();
  box->delivered_bytes_ = box->bytes_ - pending_bytes;
  if (box->delivered_bytes_ > box->bytes_ / 2 && box->bytes_ > kCompactAbove)
    box->compact();
  return box;
}

bool Outbox::append(const std::string &line, bool sync) {
  if (fd_ < 0)
    return false;
  if (!write_all(fd_, line) || (sync && ::fdatasync(fd_) != 0)) {
    // No half line left behind (should this fail too, the next open drops it).
    const int cut = ::ftruncate(fd_, static_cast<off_t>(bytes_));
    (void)cut;
    return false;
  }
  bytes_ += line.size();
  return true;
}

Outbox::Added Outbox::add(const OutboxEvent &event, bool sync) {
  const std::string line = event_line(event);
  if (bytes_ + line.size() > max_bytes_ && delivered_bytes_ > 0)
    compact();
  if (bytes_ + line.size() > max_bytes_)
    return Added::kFull;
  if (!append(line, sync))
    return Added::kIoError;
  unsynced_ = unsynced_ || !sync;
  OutboxEvent kept = event;
  kept.stored_bytes = line.size();
  pending_.push_back(std::move(kept));
  return Added::kOk;
}

bool Outbox::sync() {
  if (!unsynced_)
    return true;
  if (fd_ < 0 || ::fdatasync(fd_) != 0)
    return false;
  unsynced_ = false;
  return true;
}

void Outbox::delivered(const std::string &id) {
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if (it->id != id)
      continue;
    const std::string line = delivered_line(id);
    // Not fsync'd: a marker lost to a crash means one more delivery, which
    // the receiver deduplicates by id.
    if (append(line, false))
      delivered_bytes_ += it->stored_bytes + line.size();
    pending_.erase(it);
    break;
  }
  if (delivered_bytes_ > bytes_ / 2 && bytes_ > kCompactAbove)
    compact();
}

bool Outbox::compact() {
  const std::string tmp = path_ + ".tmp";
  // Opened for appending: after the rename this descriptor is the outbox's,
  // so there is nothing to open again (which could fail).
  const int fd = ::open(tmp.c_str(), O_RDWR | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return false;
  std::size_t size = 0;
  bool ok = true;
  for (auto &event : pending_) {
    const std::string line = event_line(event);
    event.stored_bytes = line.size();
    size += line.size();
    ok = ok && write_all(fd, line);
  }
  ok = ok && ::fsync(fd) == 0;
  if (!ok || ::rename(tmp.c_str(), path_.c_str()) != 0) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return false;
  }
  // The rename itself must survive a crash: the folder's entry.
  const std::string dir = path_.find('/') == std::string::npos ? "." : path_.substr(0, path_.rfind('/') + 1);
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  ::close(fd_);  // it names the replaced file now
  fd_ = fd;
  bytes_ = size;
  delivered_bytes_ = 0;
  unsynced_ = false;  // every pending event was written and fsync'd above
  return true;
}

}  // namespace duet::webhooks
