// Tests for the webhooks' outbox (plugins/webhooks/outbox.cpp) on real
// files: what is added comes back after a reopen, in order, until it is
// delivered; a line a crash cut short is dropped; the size limit; and
// compaction.
#include <catch2/catch.hpp>

#include "webhooks/outbox.hpp"

#include <cstdio>
#include <fstream>
#include <string>

#include <sys/stat.h>
#include <unistd.h>

using duet::webhooks::Outbox;
using duet::webhooks::OutboxEvent;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/duet-outbox-XXXXXX";
    REQUIRE(mkdtemp(name) != nullptr);
    path = name;
  }
  ~TempDir() {
    std::remove((path + "/outbox").c_str());
    std::remove((path + "/outbox.tmp").c_str());
    std::remove((path + "/outbox.lock").c_str());
    rmdir(path.c_str());
  }
  std::string file() const { return path + "/outbox"; }
};

OutboxEvent event(int n) {
  return {"msg_" + std::to_string(n), 1700000000000 + n,
          R"({"type":"call.started","data":{"n":)" + std::to_string(n) + "}}"};
}

std::unique_ptr<Outbox> open_box(const std::string &path, std::size_t max = 1 << 20) {
  std::string error;
  auto box = Outbox::open(path, max, error);
  INFO(error);
  REQUIRE(box);
  return box;
}

std::size_t file_size(const std::string &path) {
  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  return static_cast<std::size_t>(st.st_size);
}

}  // namespace

TEST_CASE("events come back after a reopen, in order, until delivered", "[outbox]") {
  TempDir dir;
  {
    auto box = open_box(dir.file());
    for (int n = 1; n <= 3; n++)
      REQUIRE(box->add(event(n)) == Outbox::Added::kOk);
    box->delivered("msg_2");
    CHECK(box->pending().size() == 2);
  }
  auto again = open_box(dir.file());
  REQUIRE(again->pending().size() == 2);
  CHECK(again->pending()[0].id == "msg_1");
  CHECK(again->pending()[0].created_ms == 1700000000001);
  CHECK(again->pending()[0].body == event(1).body);
  CHECK(again->pending()[1].id == "msg_3");
  again->delivered("msg_1");
  again->delivered("msg_unknown");  // nothing to do
  again.reset();                    // one holder at a time
  CHECK(open_box(dir.file())->pending().size() == 1);
}

TEST_CASE("a last line a crash cut short is dropped, and cut off the file", "[outbox]") {
  TempDir dir;
  open_box(dir.file())->add(event(1));
  const std::size_t whole = file_size(dir.file());
  {
    std::ofstream torn(dir.file(), std::ios::app | std::ios::binary);
    torn << R"({"event":{"id":"msg_2","created_ms":17000)";
  }
  auto box = open_box(dir.file());
  CHECK(box->pending().size() == 1);
  CHECK(file_size(dir.file()) == whole);
  REQUIRE(box->add(event(3)) == Outbox::Added::kOk);
  box.reset();
  CHECK(open_box(dir.file())->pending().size() == 2);
}

TEST_CASE("an event that would pass the size limit is refused until delivered ones make room", "[outbox]") {
  TempDir dir;
  auto box = open_box(dir.file(), 300);
  int added = 0;
  while (box->add(event(added + 1)) == Outbox::Added::kOk)
    added++;
  REQUIRE(added >= 2);
  CHECK(box->add(event(99)) == Outbox::Added::kFull);
  CHECK(box->pending().size() == static_cast<std::size_t>(added));
  CHECK(box->bytes() <= 300);
  box->delivered("msg_1");
  box->delivered("msg_2");
  CHECK(box->add(event(99)) == Outbox::Added::kOk);  // compacted to make room
  box.reset();
  CHECK(open_box(dir.file(), 300)->pending().back().id == "msg_99");
}

TEST_CASE("one process at a time holds an outbox", "[outbox]") {
  TempDir dir;
  auto box = open_box(dir.file());
  std::string error;
  CHECK_FALSE(Outbox::open(dir.file(), 1 << 20, error));
  CHECK(error.find("another process holds the outbox") != std::string::npos);
  box.reset();
  CHECK(open_box(dir.file()));
}

TEST_CASE("events added without a sync are durable once sync() says so", "[outbox]") {
  TempDir dir;
  {
    auto box = open_box(dir.file());
    CHECK(box->synced());
    REQUIRE(box->add(event(1), false) == Outbox::Added::kOk);
    REQUIRE(box->add(event(2), false) == Outbox::Added::kOk);
    CHECK_FALSE(box->synced());
    CHECK(box->sync());
    CHECK(box->synced());
  }
  CHECK(open_box(dir.file())->pending().size() == 2);
}

TEST_CASE("delivered events are compacted away once they are most of a large file", "[outbox]") {
  TempDir dir;
  auto box = open_box(dir.file());
  for (int n = 1; n <= 2000; n++)
    REQUIRE(box->add(event(n)) == Outbox::Added::kOk);
  const std::size_t full = file_size(dir.file());
  for (int n = 1; n <= 1990; n++)
    box->delivered("msg_" + std::to_string(n));
  // Rewritten once delivered lines were most of it; what is left is the
  // pending lines and the markers since, under the 64 KiB worth compacting.
  CHECK(full > 150000);
  CHECK(file_size(dir.file()) < 65536);
  box.reset();
  auto again = open_box(dir.file());
  REQUIRE(again->pending().size() == 10);
  CHECK(again->pending().front().id == "msg_1991");
}
