// A bounded buffer of whole text lines and the flush of it to a file
// descriptor: the part of the audit log that knows nothing of duetd, so the
// unit tests can drive it with pipes and files.
#ifndef DUET_AUDIT_LOG_LINE_BUFFER_HPP
#define DUET_AUDIT_LOG_LINE_BUFFER_HPP

#include <cstddef>
#include <string>
#include <string_view>

namespace duet::audit {

// What one flush did. error is 0 when everything buffered was written,
// EAGAIN when the file would block (the rest waits for the next flush), or
// the errno of a failed write (the rest also waits; the caller decides
// whether to discard it).
struct FlushResult {
  std::size_t lines_written = 0;
  int error = 0;
};

// How flush_to hands bytes to the descriptor. A socket shared with other
// processes (stdout connected to journald, say) must not be switched to
// non-blocking mode for everyone; send with MSG_DONTWAIT makes just our
// calls non-blocking.
enum class WriteCall { kWrite, kSendDontWait };

class LineBuffer {
public:
  // capacity_bytes bounds everything buffered, newlines included.
  explicit LineBuffer(std::size_t capacity_bytes);

  // Adds line plus a newline if the whole of it fits; otherwise adds nothing
  // and returns false. A line containing a newline is refused too: one
  // record must stay one line.
  bool append(std::string_view line);

  // Writes as much as the descriptor takes, retrying interrupted writes.
  // Whatever a short write leaves stays buffered, so a line is never split
  // between two flushes unless the file itself changes (see
  // drop_unfinished_line).
  FlushResult flush_to(int fd, WriteCall call = WriteCall::kWrite);

  // Drops everything buffered and returns how many lines that lost. A line
  // the file already holds the start of counts as lost, and the next flush
  // first ends that fragment with a newline so later lines stay intact.
  std::size_t discard();

  // Before the caller writes to another file: drops the rest of a line
  // whose start went to the old file (it could not parse in either), and
  // forgets a newline owed to the old file. Returns how many lines that
  // lost (0 or 1).
  std::size_t drop_unfinished_line();

  std::size_t size_bytes() const { return bytes_.size(); }
  std::size_t capacity_bytes() const { return capacity_; }
  std::size_t line_count() const { return lines_; }
  bool empty() const { return bytes_.empty(); }
  bool past_half() const { return bytes_.size() > capacity_ / 2; }
  // True when the file holds the start of a line whose rest is buffered.
  bool mid_line() const { return mid_line_; }

private:
  std::size_t capacity_;
  std::string bytes_;
  // Whole lines buffered, not counting an owed newline.
  std::size_t lines_ = 0;
  bool mid_line_ = false;
  // The buffer starts with a lone newline that only ends a fragment already
  // counted as lost; writing it is no new line.
  bool owes_line_break_ = false;
};

}  // namespace duet::audit

#endif  // DUET_AUDIT_LOG_LINE_BUFFER_HPP
