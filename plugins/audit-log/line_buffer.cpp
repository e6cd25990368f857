#include "line_buffer.hpp"

#include <algorithm>
#include <cerrno>

#include <sys/socket.h>
#include <unistd.h>

namespace duet::audit {

LineBuffer::LineBuffer(std::size_t capacity_bytes) : capacity_(capacity_bytes) {}

bool LineBuffer::append(std::string_view line) {
  if (line.find('\n') != std::string_view::npos)
    return false;
  // Comparing this way round cannot overflow, whatever the sizes.
  if (line.size() >= capacity_ || bytes_.size() > capacity_ - line.size() - 1)
    return false;
  bytes_.append(line);
  bytes_.push_back('\n');
  ++lines_;
  return true;
}

FlushResult LineBuffer::flush_to(int fd, WriteCall call) {
  FlushResult result;
  std::size_t done = 0;
  while (done < bytes_.size()) {
    const char *data = bytes_.data() + done;
    const std::size_t size = bytes_.size() - done;
    const ssize_t n = call == WriteCall::kSendDontWait ? ::send(fd, data, size, MSG_DONTWAIT | MSG_NOSIGNAL)
                                                       : ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      // One name for "would block", whatever the platform calls it.
      result.error = errno == EWOULDBLOCK ? EAGAIN : errno;
      break;
    }
    if (n == 0) {
      // A write that takes nothing and reports no error would spin forever;
      // treat it like a full pipe and try again at the next flush.
      result.error = EAGAIN;
      break;
    }
    const auto begin = bytes_.begin() + static_cast<std::ptrdiff_t>(done);
    const auto end = begin + n;
    auto newlines = static_cast<std::size_t>(std::count(begin, end, '\n'));
    if (owes_line_break_) {
      // The owed newline is always the first byte and ends no counted line.
      owes_line_break_ = false;
      --newlines;
    }
    result.lines_written += newlines;
    lines_ -= newlines;
    mid_line_ = *(end - 1) != '\n';
    done += static_cast<std::size_t>(n);
  }
  bytes_.erase(0, done);
  return result;
}

std::size_t LineBuffer::discard() {
  const std::size_t lost = lines_;
  lines_ = 0;
  bytes_.clear();
  if (mid_line_) {
    // The file ends in a fragment: end it, or the next line would be glued
    // to it and neither would parse.
    bytes_.push_back('\n');
    owes_line_break_ = true;
  }
  return lost;
}

std::size_t LineBuffer::drop_unfinished_line() {
  if (!mid_line_)
    return 0;
  const std::size_t lost = owes_line_break_ ? 0 : 1;
  // Every buffered line ends in a newline, so the unfinished one has one.
  bytes_.erase(0, bytes_.find('\n') + 1);
  lines_ -= lost;
  owes_line_break_ = false;
  mid_line_ = false;
  return lost;
}

}  // namespace duet::audit
