// The webhooks' outbox: every event is written to a file in the state
// folder, and fsync'd, before it is sent, so that none is lost to a crash,
// a kill -9 or a receiver that is down for a day. A line per record:
//   {"event":{"id":…,"created_ms":…,"body":…}}   an event to deliver
//   {"delivered":"ID"}                            its receiver said 2xx
// Opening the file again gives back the events not yet delivered, in order.
// A last line cut short by a crash is dropped. Delivered events are
// compacted away (the file rewritten, then renamed over the old one) once
// they make up most of it. The file has a size limit: an event that would
// pass it is refused, and the caller says so loudly. One process at a time
// holds an outbox: a lock on PATH.lock (taken for the Outbox's life, and
// apart from the file, which compaction replaces).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

namespace duet::webhooks {

struct OutboxEvent {
  std::string id;  // stable across retries and restarts: receivers deduplicate on it
  std::int64_t created_ms = 0;
  std::string body;              // the JSON the receiver gets
  std::size_t stored_bytes = 0;  // its line in the file (set by the outbox)
};

class Outbox {
public:
  // Opens (or creates) the outbox at path; nullptr with a sentence in error.
  static std::unique_ptr<Outbox> open(const std::string &path, std::size_t max_bytes, std::string &error);
  ~Outbox();
  Outbox(const Outbox &) = delete;
  Outbox &operator=(const Outbox &) = delete;

  enum class Added { kOk, kFull, kIoError };
  // Appends event, and fsyncs unless sync is false (then sync() must come
  // before the event is sent); kFull when the file would pass its limit.
  Added add(const OutboxEvent &event, bool sync = true);
  // Makes every event added so far durable; false when the disk failed.
  bool sync();
  bool synced() const { return !unsynced_; }
  // The event id was delivered (or given up): not handed out again.
  void delivered(const std::string &id);

  const std::deque<OutboxEvent> &pending() const { return pending_; }
  std::size_t bytes() const { return bytes_; }
  std::size_t max_bytes() const { return max_bytes_; }

private:
  Outbox(std::string path, int fd, int lock_fd, std::size_t max_bytes);
  bool append(const std::string &line, bool sync);
  bool compact();

  std::string path_;
  int fd_;
  int lock_fd_;
  std::size_t max_bytes_;
  bool unsynced_ = false;
  std::size_t bytes_ = 0;
  std::size_t delivered_bytes_ = 0;  // bytes of the file that only delivered events use
  std::deque<OutboxEvent> pending_;
};

}  // namespace duet::webhooks
