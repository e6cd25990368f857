// The audit log's bounded buffer of whole lines, flushed to real pipes and
// files: full pipes, short writes, failing devices and file switches.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "line_buffer.hpp"

using duet::audit::FlushResult;
using duet::audit::LineBuffer;

namespace {

// Both ends of a pipe whose write end never blocks; closed on destruction.
struct Pipe {
  int read_end = -1;
  int write_end = -1;
  Pipe() {
    int ends[2];
    REQUIRE(pipe(ends) == 0);
    read_end = ends[0];
    write_end = ends[1];
    REQUIRE(fcntl(write_end, F_SETFL, O_NONBLOCK) == 0);
    REQUIRE(fcntl(read_end, F_SETFL, O_NONBLOCK) == 0);
  }
  ~Pipe() {
    close(read_end);
    close(write_end);
  }
  Pipe(const Pipe &) = delete;
  Pipe &operator=(const Pipe &) = delete;

  // Everything the pipe holds right now.
  std::string drain() const {
    std::string out;
    char chunk[65536];
    for (;;) {
      const ssize_t n = read(read_end, chunk, sizeof chunk);
      if (n <= 0)
        return out;
      out.append(chunk, static_cast<std::size_t>(n));
    }
  }

  std::size_t capacity() const {
#ifdef F_GETPIPE_SZ
    const int size = fcntl(write_end, F_GETPIPE_SZ);
    if (size > 0)
      return static_cast<std::size_t>(size);
#endif
    return 65536;
  }
};

// A temporary regular file, removed on destruction.
struct TempFile {
  std::string path;
  int fd = -1;
  TempFile() {
    char name[] = "/tmp/duet-line-buffer-XXXXXX";
    fd = mkstemp(name);
    REQUIRE(fd >= 0);
    path = name;
  }
  ~TempFile() {
    close(fd);
    unlink(path.c_str());
  }
  TempFile(const TempFile &) = delete;
  TempFile &operator=(const TempFile &) = delete;

  std::string contents() const {
    std::string out;
    std::FILE *file = std::fopen(path.c_str(), "rb");
    REQUIRE(file != nullptr);
    char chunk[4096];
    std::size_t n;
    while ((n = std::fread(chunk, 1, sizeof chunk, file)) > 0)
      out.append(chunk, n);
    std::fclose(file);
    return out;
  }
};

// Line number i: 99 characters, 100 bytes with its newline. Pipe sizes are
// powers of two, never multiples of 100, so a full pipe always cuts a line.
std::string numbered_line(std::size_t i) {
  std::string line = "line " + std::to_string(i) + " ";
  line.resize(99, 'x');
  return line;
}

std::vector<std::string> split_lines(const std::string &text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t end = text.find('\n'); end != std::string::npos; end = text.find('\n', start)) {
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  if (start < text.size())
    lines.push_back(text.substr(start));
  return lines;
}

}  // namespace

TEST_CASE("A buffered line reaches the file whole, with one newline") {
  LineBuffer buffer(4096);
  Pipe pipe;
  REQUIRE(buffer.append(R"({"event":"accepted"})"));
  REQUIRE(buffer.append(R"({"event":"closed"})"));
  CHECK(buffer.line_count() == 2);
  CHECK(buffer.size_bytes() == 20 + 1 + 18 + 1);

  const FlushResult result = buffer.flush_to(pipe.write_end);
  CHECK(result.error == 0);
  CHECK(result.lines_written == 2);
  CHECK(buffer.empty());
  CHECK(buffer.line_count() == 0);
  CHECK(pipe.drain() == "{\"event\":\"accepted\"}\n{\"event\":\"closed\"}\n");
}

TEST_CASE("A line that does not fit whole is refused and nothing of it is buffered") {
  LineBuffer buffer(10);
  CHECK(buffer.append("12345678"));  // 9 bytes with its newline
  CHECK_FALSE(buffer.append("1"));   // would need 11
  CHECK(buffer.size_bytes() == 9);
  CHECK(buffer.line_count() == 1);

  LineBuffer exact(10);
  CHECK(exact.append("123456789"));  // exactly 10 with its newline
  CHECK_FALSE(exact.append(""));
  LineBuffer tiny(4);
  CHECK_FALSE(tiny.append("1234"));  // longer than the whole buffer
  CHECK(tiny.empty());
}

TEST_CASE("A line holding a newline is refused so one record stays one line") {
  LineBuffer buffer(4096);
  CHECK_FALSE(buffer.append("first\nsecond"));
  CHECK(buffer.empty());
}

TEST_CASE("The buffer says when it is past half full") {
  LineBuffer buffer(100);
  REQUIRE(buffer.append(std::string(49, 'a')));  // 50 bytes: half, not past it
  CHECK_FALSE(buffer.past_half());
  REQUIRE(buffer.append(""));
  CHECK(buffer.past_half());
}

TEST_CASE("A full pipe keeps the rest buffered and later flushes finish every line in order") {
  Pipe pipe;
  const std::size_t count = pipe.capacity() / 100 + 20;
  LineBuffer buffer(count * 100);
  for (std::size_t i = 0; i < count; i++)
    REQUIRE(buffer.append(numbered_line(i)));

  FlushResult first = buffer.flush_to(pipe.write_end);
  CHECK(first.error == EAGAIN);
  CHECK(first.lines_written == pipe.capacity() / 100);
  CHECK(buffer.mid_line());
  CHECK(buffer.line_count() == count - first.lines_written);

  // Nothing more goes in while the pipe is full.
  CHECK(buffer.flush_to(pipe.write_end).lines_written == 0);

  std::string received = pipe.drain();
  const FlushResult second = buffer.flush_to(pipe.write_end);
  CHECK(second.error == 0);
  CHECK(first.lines_written + second.lines_written == count);
  CHECK_FALSE(buffer.mid_line());
  received += pipe.drain();

  const std::vector<std::string> lines = split_lines(received);
  REQUIRE(lines.size() == count);
  for (std::size_t i = 0; i < count; i++)
    CHECK(lines[i] == numbered_line(i));
}

TEST_CASE("A failing device reports its error and keeps the lines for the caller to decide") {
  const int full = open("/dev/full", O_WRONLY | O_CLOEXEC);
  if (full < 0)
    return;  // No /dev/full here: nothing to test against.
  LineBuffer buffer(4096);
  REQUIRE(buffer.append("a record"));
  const FlushResult result = buffer.flush_to(full);
  close(full);
  CHECK(result.error == ENOSPC);
  CHECK(result.lines_written == 0);
  CHECK(buffer.line_count() == 1);
  CHECK(buffer.discard() == 1);
  CHECK(buffer.empty());
  CHECK_FALSE(buffer.mid_line());
}

TEST_CASE("A descriptor that cannot be written reports its error") {
  const int read_only = open("/dev/null", O_RDONLY | O_CLOEXEC);
  REQUIRE(read_only >= 0);
  LineBuffer buffer(4096);
  REQUIRE(buffer.append("a record"));
  const FlushResult result = buffer.flush_to(read_only);
  close(read_only);
  CHECK(result.error == EBADF);
  CHECK(buffer.line_count() == 1);
}

TEST_CASE("Discarding after a cut line ends the fragment so the next line stays intact") {
  Pipe pipe;
  const std::size_t count = pipe.capacity() / 100 + 1;
  LineBuffer buffer(count * 100 + 100);
  for (std::size_t i = 0; i < count; i++)
    REQUIRE(buffer.append(numbered_line(i)));
  const FlushResult cut = buffer.flush_to(pipe.write_end);
  REQUIRE(cut.error == EAGAIN);
  REQUIRE(buffer.mid_line());

  // The cut line counts as lost: the file holds only its start.
  CHECK(buffer.discard() == count - cut.lines_written);
  CHECK(buffer.line_count() == 0);
  REQUIRE(buffer.append("after"));

  std::string received = pipe.drain();
  const FlushResult next = buffer.flush_to(pipe.write_end);
  CHECK(next.error == 0);
  CHECK(next.lines_written == 1);  // the owed newline ends no new line
  received += pipe.drain();

  const std::vector<std::string> lines = split_lines(received);
  REQUIRE(lines.size() == cut.lines_written + 2);
  CHECK(lines[cut.lines_written] == numbered_line(cut.lines_written).substr(0, lines[cut.lines_written].size()));
  CHECK(lines.back() == "after");
}

TEST_CASE("Switching files drops the rest of a cut line and the new file gets only whole lines") {
  Pipe old_file;
  const std::size_t count = old_file.capacity() / 100 + 3;
  LineBuffer buffer(count * 100);
  for (std::size_t i = 0; i < count; i++)
    REQUIRE(buffer.append(numbered_line(i)));
  const FlushResult cut = buffer.flush_to(old_file.write_end);
  REQUIRE(cut.error == EAGAIN);
  REQUIRE(buffer.mid_line());

  CHECK(buffer.drop_unfinished_line() == 1);
  CHECK_FALSE(buffer.mid_line());
  CHECK(buffer.drop_unfinished_line() == 0);

  TempFile new_file;
  const FlushResult rest = buffer.flush_to(new_file.fd);
  CHECK(rest.error == 0);
  CHECK(cut.lines_written + 1 + rest.lines_written == count);
  const std::vector<std::string> lines = split_lines(new_file.contents());
  REQUIRE(lines.size() == rest.lines_written);
  for (std::size_t i = 0; i < lines.size(); i++)
    CHECK(lines[i] == numbered_line(cut.lines_written + 1 + i));
}

TEST_CASE("Switching files after a discard forgets the newline owed to the old file") {
  Pipe old_file;
  const std::size_t count = old_file.capacity() / 100 + 1;
  LineBuffer buffer(count * 100);
  for (std::size_t i = 0; i < count; i++)
    REQUIRE(buffer.append(numbered_line(i)));
  REQUIRE(buffer.flush_to(old_file.write_end).error == EAGAIN);
  buffer.discard();
  REQUIRE(buffer.append("fresh"));

  // The owed newline was no line of its own: dropping it loses nothing.
  CHECK(buffer.drop_unfinished_line() == 0);
  CHECK(buffer.line_count() == 1);
  TempFile new_file;
  CHECK(buffer.flush_to(new_file.fd).lines_written == 1);
  CHECK(new_file.contents() == "fresh\n");
}

TEST_CASE("Records appended while a line is cut go out after it, in order") {
  Pipe pipe;
  const std::size_t count = pipe.capacity() / 100 + 1;
  LineBuffer buffer(count * 100 + 1000);
  for (std::size_t i = 0; i < count; i++)
    REQUIRE(buffer.append(numbered_line(i)));
  REQUIRE(buffer.flush_to(pipe.write_end).error == EAGAIN);
  REQUIRE(buffer.append(numbered_line(count)));

  std::string received = pipe.drain();
  CHECK(buffer.flush_to(pipe.write_end).error == 0);
  received += pipe.drain();
  const std::vector<std::string> lines = split_lines(received);
  REQUIRE(lines.size() == count + 1);
  for (std::size_t i = 0; i <= count; i++)
    CHECK(lines[i] == numbered_line(i));
}

TEST_CASE("A blocking socket written with send and MSG_DONTWAIT reports a full buffer instead of waiting") {
  int ends[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, ends) == 0);
  // The descriptor stays blocking, as a socket shared with other processes would.
  REQUIRE((fcntl(ends[0], F_GETFL) & O_NONBLOCK) == 0);
  const std::size_t count = 20000;
  LineBuffer buffer(count * 100);
  for (std::size_t i = 0; i < count; i++)
    REQUIRE(buffer.append(numbered_line(i)));

  const FlushResult result = buffer.flush_to(ends[0], duet::audit::WriteCall::kSendDontWait);
  CHECK(result.error == EAGAIN);
  CHECK(result.lines_written < count);
  CHECK(buffer.line_count() == count - result.lines_written);
  close(ends[0]);
  close(ends[1]);
}
