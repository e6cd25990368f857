// The ring plugin's pure parts: the SQLite store (schema, invites, the last
// device taking its line along, a newer schema refused), the window limit,
// and the shape of its ids, without duetd.
#include <catch2/catch.hpp>

#include <filesystem>
#include <regex>
#include <set>
#include <string>

#include <sqlite3.h>
#include <unistd.h>

#include "ring/ids.hpp"
#include "ring/limits.hpp"
#include "ring/store.hpp"

using namespace duet::ring;

namespace {

// A fresh database file in a temporary folder, removed afterwards.
struct TempDb {
  TempDb() {
    char dir[] = "/tmp/duet-ring-unit-XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    folder = dir;
    path = folder + "/sub/ring.db";  // the folder is made on first use
  }
  ~TempDb() {
    std::error_code ec;
    std::filesystem::remove_all(folder, ec);
  }
  std::string folder, path;
};

}  // namespace

TEST_CASE("a line keeps its devices, name and link across a reopen") {
  TempDb tmp;
  LineKey key = 0;
  {
    Store store(tmp.path);
    const Line line = store.create_line("id-one", "Alice", {"dev1", "laptop"}, sha256("s1"), 1000);
    key = line.key;
    store.add_device(key, {"dev2", "phone"}, sha256("s2"), 2000);
    store.rename(key, "Grandma");
    store.relink(key, "id-two");
  }
  Store store(tmp.path);
  CHECK_FALSE(store.line_by_id("id-one"));
  REQUIRE(store.line_by_id("id-two"));
  CHECK(store.line_by_id("id-two")->name == "Grandma");
  CHECK(store.devices(key).size() == 2);
  REQUIRE(store.device("dev2"));
  CHECK(same_secret(store.device("dev2")->secret_hash, sha256("s2")));
  CHECK_FALSE(same_secret(store.device("dev2")->secret_hash, sha256("s1")));
}

TEST_CASE("an invite is used once and only before it expires") {
  TempDb tmp;
  Store store(tmp.path);
  const LineKey key = store.create_line("id", "A", {"d", "x"}, sha256("s"), 0).key;
  store.add_invite(key, sha256("code"), 0, 5000);
  CHECK_FALSE(store.take_invite(sha256("other"), 1000));
  CHECK(store.take_invite(sha256("code"), 1000) == key);
  CHECK_FALSE(store.take_invite(sha256("code"), 1000));
  store.add_invite(key, sha256("late"), 0, 5000);
  CHECK_FALSE(store.take_invite(sha256("late"), 5000));
}

TEST_CASE("a line keeps its four newest invites and no expired one") {
  TempDb tmp;
  Store store(tmp.path);
  const LineKey key = store.create_line("id", "A", {"d", "x"}, sha256("s"), 0).key;
  const LineKey other = store.create_line("id2", "B", {"d2", "x"}, sha256("s2"), 0).key;
  store.add_invite(other, sha256("other line"), 0, 100);  // expired by the next add
  for (int i = 0; i < 1000; i++)
    store.add_invite(key, sha256("code " + std::to_string(i)), 1000 + i, 100000 + i);
  sqlite3 *db = nullptr;
  REQUIRE(sqlite3_open(tmp.path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt *count = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "SELECT count(*) FROM invites", -1, &count, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(count) == SQLITE_ROW);
  CHECK(sqlite3_column_int(count, 0) == 4);
  sqlite3_finalize(count);
  sqlite3_close(db);
  CHECK_FALSE(store.take_invite(sha256("other line"), 2000));
  CHECK_FALSE(store.take_invite(sha256("code 995"), 2000));
  for (int i = 996; i < 1000; i++)
    CHECK(store.take_invite(sha256("code " + std::to_string(i)), 2000) == key);
}

TEST_CASE("a removed line's key is never given to a new line") {
  TempDb tmp;
  Store store(tmp.path);
  const LineKey first = store.create_line("id", "A", {"d", "x"}, sha256("s"), 0).key;
  REQUIRE(store.remove_device(first, "d"));
  REQUIRE_FALSE(store.line(first));
  CHECK(store.create_line("id2", "B", {"d2", "x"}, sha256("s2"), 0).key != first);
}

TEST_CASE("removing the last device removes the line and its missed calls") {
  TempDb tmp;
  Store store(tmp.path);
  const LineKey key = store.create_line("id", "A", {"d1", "x"}, sha256("s"), 0).key;
  store.add_device(key, {"d2", "y"}, sha256("t"), 0);
  store.add_missed(key, "Bob", 10);
  store.add_missed(key, "Carol", 20);
  CHECK(store.missed(key, 20).front().caller == "Carol");
  CHECK_FALSE(store.remove_device(key, "nosuch"));
  CHECK(store.remove_device(key, "d1"));
  CHECK(store.line(key));
  CHECK(store.remove_device(key, "d2"));
  CHECK_FALSE(store.line(key));
  CHECK(store.missed(key, 20).empty());
}

TEST_CASE("a database from a newer duetd is refused, not changed") {
  TempDb tmp;
  { Store(tmp.path).line(1); }  // made at the current version
  sqlite3 *db = nullptr;
  REQUIRE(sqlite3_open(tmp.path.c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  Store store(tmp.path);
  CHECK_THROWS_AS(store.line(1), StoreError);
}

TEST_CASE("a window limit allows max per window and key, then forgets") {
  WindowLimit limit(2, 60000);
  CHECK(limit.allow("a", 0));
  CHECK(limit.allow("a", 10));
  CHECK_FALSE(limit.allow("a", 20));
  CHECK(limit.allow("b", 20));
  CHECK(limit.allow("a", 60000));
  limit.prune(200000);
  CHECK(limit.keys() == 0);
  WindowLimit tiny(5, 60000, 1);
  CHECK(tiny.allow("a", 0));
  CHECK_FALSE(tiny.allow("b", 0));  // too many keys at once: fails closed
}

TEST_CASE("ids are readable and differ") {
  const std::regex line("^([a-z]+-){4}[0-9a-hjkmnp-tv-z]{7}$"), code("^([a-z]+-){3}[0-9a-hjkmnp-tv-z]{4}$");
  std::set<std::string> seen;
  for (int i = 0; i < 200; i++) {
    const std::string id = new_line_id();
    CHECK(std::regex_match(id, line));
    CHECK(std::regex_match(new_invite_code(), code));
    seen.insert(id);
  }
  CHECK(seen.size() == 200);
  CHECK(random_hex(16).size() == 32);
}

TEST_CASE("per-address limits count an IPv6 caller by its /64 and an IPv4 one by its address") {
  CHECK(address_key("203.0.113.7") == "203.0.113.7");
  CHECK(address_key("::ffff:203.0.113.7") == "::ffff:203.0.113.7");
  CHECK(address_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == "2001:db8:1:2::/64");
  CHECK(address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9"));
  CHECK(address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1"));
  CHECK(address_key("") == "");
}
