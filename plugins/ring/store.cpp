#include "store.hpp"

#include <filesystem>
#include <utility>

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

namespace duet::ring {

namespace {

// Each entry moves the schema one version up; append, never edit.
const char *const kMigrations[] = {
    // 1: lines, devices, invites, missed calls.
    // AUTOINCREMENT: a removed line's key is never given to a new one (rings
    // and calls in memory are keyed by it).
    "CREATE TABLE lines(key INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL);"
    "CREATE TABLE devices(id TEXT PRIMARY KEY, line INTEGER NOT NULL REFERENCES lines(key) ON DELETE CASCADE,"
    " secret_hash BLOB NOT NULL, label TEXT NOT NULL, created_ms INTEGER NOT NULL);"
    "CREATE INDEX devices_by_line ON devices(line);"
    "CREATE TABLE invites(code_hash BLOB PRIMARY KEY,"
    " line INTEGER NOT NULL REFERENCES lines(key) ON DELETE CASCADE, expires_ms INTEGER NOT NULL);"
    "CREATE INDEX invites_by_expiry ON invites(expires_ms);"
    "CREATE INDEX invites_by_line ON invites(line, expires_ms);"
    "CREATE TABLE missed(line INTEGER NOT NULL REFERENCES lines(key) ON DELETE CASCADE,"
    " caller TEXT NOT NULL, at_ms INTEGER NOT NULL);"
    "CREATE INDEX missed_by_line ON missed(line, at_ms);",
    // 2: a device's Web Push subscription (one per device).
    "CREATE TABLE push_subscriptions(device TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,"
    " endpoint TEXT NOT NULL, p256dh BLOB NOT NULL, auth BLOB NOT NULL, created_ms INTEGER NOT NULL);",
};
constexpr int kVersion = sizeof kMigrations / sizeof kMigrations[0];

// Missed calls kept per line: a list to glance at, not an archive.
constexpr int kMissedKept = 50;
// Unused invite codes a line keeps (the newest): enough for a few devices
// joining at once.
constexpr int kInvitesKept = 4;

// One prepared statement; throws StoreError naming the database's complaint.
class Stmt {
public:
  Stmt(sqlite3 *db, const char *sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK)
      fail();
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt &) = delete;
  Stmt &operator=(const Stmt &) = delete;

  Stmt &bind(int i, const std::string &text) {
    check(sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt &blob(int i, const std::string &bytes) {
    check(sqlite3_bind_blob(stmt_, i, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt &bind(int i, std::int64_t n) {
    check(sqlite3_bind_int64(stmt_, i, n));
    return *this;
  }
  // true while a row is there.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW)
      return true;
    if (rc != SQLITE_DONE)
      fail();
    return false;
  }
  void run() {
    while (step()) {
    }
  }
  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string text(int col) const {
    const auto *p = static_cast<const char *>(sqlite3_column_blob(stmt_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
  }
  int changes() const { return sqlite3_changes(db_); }

private:
  void check(int rc) const {
    if (rc != SQLITE_OK)
      fail();
  }
  [[noreturn]] void fail() const { throw StoreError(std::string("ring store: ") + sqlite3_errmsg(db_)); }

  sqlite3 *db_;
  sqlite3_stmt *stmt_ = nullptr;
};

// BEGIN IMMEDIATE ... COMMIT, rolled back when an exception leaves the scope.
class Transaction {
public:
  explicit Transaction(sqlite3 *db) : db_(db) { Stmt(db, "BEGIN IMMEDIATE").run(); }
  ~Transaction() {
    if (!done_)
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Transaction(const Transaction &) = delete;
  Transaction &operator=(const Transaction &) = delete;
  void commit() {
    Stmt(db_, "COMMIT").run();
    done_ = true;
  }

private:
  sqlite3 *db_;
  bool done_ = false;
};

}  // namespace

Store::~Store() { sqlite3_close(db_); }

sqlite3 *Store::db() {
  if (db_)
    return db_;
  // The state folder may not exist yet: made private, like duetd makes it.
  const std::filesystem::path dir = std::filesystem::path(path_).parent_path();
  std::error_code ec;
  if (!dir.empty() && std::filesystem::create_directories(dir, ec))
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
  // Private: it holds push subscriptions' keys and secrets' hashes. SQLite
  // gives its -wal and -shm files the same mode.
  const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) {
    (void)fchmod(fd, 0600);
    ::close(fd);
  }
  sqlite3 *db = nullptr;
  if (sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    const std::string why = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw StoreError("ring store: cannot open " + path_ + ": " + why);
  }
  db_ = db;
  try {
    // duetd is the one writer; a wait means another process holds the file
    // (a second duetd on it by mistake), and the loop must not stall long.
    sqlite3_busy_timeout(db_, 250);
    // WAL: readers never wait for the writer; NORMAL: a commit costs no fsync
    // (a power cut may lose the last commits, never the file). The WAL is
    // cut back to 4 MB after checkpoints.
    if (Stmt wal(db_, "PRAGMA journal_mode=WAL"); !wal.step() || wal.text(0) != "wal")
      throw StoreError("ring store " + path_ + ": cannot use WAL mode (a file system without shared memory?)");
    exec("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA journal_size_limit=4194304;");
    migrate();
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
  return db_;
}

void Store::exec(const char *sql) {
  char *err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string why = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw StoreError("ring store " + path_ + ": " + why);
  }
}

void Store::migrate() {
  Stmt get(db_, "PRAGMA user_version");
  const int version = get.step() ? static_cast<int>(get.integer(0)) : 0;
  if (version > kVersion)
    throw StoreError("ring store " + path_ + " has schema version " + std::to_string(version) +
                     ", newer than this duetd knows (" + std::to_string(kVersion) + "): upgrade duetd");
  for (int v = version; v < kVersion; v++) {
    Transaction t(db_);
    exec(kMigrations[v]);
    exec(("PRAGMA user_version=" + std::to_string(v + 1)).c_str());
    t.commit();
  }
}

Line Store::create_line(const std::string &id, const std::string &name, const Device &device,
                        const std::string &secret_hash, std::int64_t now_ms) {
  Transaction t(db());
  Stmt(db_, "INSERT INTO lines(id, name, created_ms) VALUES(?1, ?2, ?3)")
      .bind(1, id)
      .bind(2, name)
      .bind(3, now_ms)
      .run();
  const LineKey key = sqlite3_last_insert_rowid(db_);
  add_device(key, device, secret_hash, now_ms);
  t.commit();
  return {key, id, name};
}

void Store::add_device(LineKey line, const Device &device, const std::string &secret_hash, std::int64_t now_ms) {
  Stmt(db(), "INSERT INTO devices(id, line, secret_hash, label, created_ms) VALUES(?1, ?2, ?3, ?4, ?5)")
      .bind(1, device.id)
      .bind(2, line)
      .blob(3, secret_hash)
      .bind(4, device.label)
      .bind(5, now_ms)
      .run();
}

std::optional<DeviceRecord> Store::device(const std::string &device_id) {
  Stmt s(db(), "SELECT line, secret_hash FROM devices WHERE id = ?1");
  s.bind(1, device_id);
  if (!s.step())
    return std::nullopt;
  return DeviceRecord{s.integer(0), s.text(1)};
}

bool Store::remove_device(LineKey line, const std::string &device_id) {
  Transaction t(db());
  Stmt del(db_, "DELETE FROM devices WHERE id = ?1 AND line = ?2");
  del.bind(1, device_id).bind(2, line).run();
  const bool removed = del.changes() > 0;
  Stmt(db_, "DELETE FROM lines WHERE key = ?1 AND NOT EXISTS (SELECT 1 FROM devices WHERE line = ?1)")
      .bind(1, line)
      .run();
  t.commit();
  return removed;
}

std::vector<Device> Store::devices(LineKey line) {
  Stmt s(db(), "SELECT id, label FROM devices WHERE line = ?1 ORDER BY created_ms, id");
  s.bind(1, line);
  std::vector<Device> out;
  while (s.step())
    out.push_back({s.text(0), s.text(1)});
  return out;
}

std::optional<Line> Store::line(LineKey key) {
  Stmt s(db(), "SELECT key, id, name FROM lines WHERE key = ?1");
  s.bind(1, key);
  if (!s.step())
    return std::nullopt;
  return Line{s.integer(0), s.text(1), s.text(2)};
}

std::int64_t Store::line_count() {
  Stmt s(db(), "SELECT COUNT(*) FROM lines");
  s.step();
  return s.integer(0);
}

std::optional<Line> Store::line_by_id(const std::string &id) {
  Stmt s(db(), "SELECT key, id, name FROM lines WHERE id = ?1");
  s.bind(1, id);
  if (!s.step())
    return std::nullopt;
  return Line{s.integer(0), s.text(1), s.text(2)};
}

void Store::rename(LineKey line, const std::string &name) {
  Stmt(db(), "UPDATE lines SET name = ?2 WHERE key = ?1").bind(1, line).bind(2, name).run();
}

void Store::relink(LineKey line, const std::string &new_id) {
  Stmt(db(), "UPDATE lines SET id = ?2 WHERE key = ?1").bind(1, line).bind(2, new_id).run();
}

void Store::add_invite(LineKey line, const std::string &code_hash, std::int64_t now_ms, std::int64_t expires_ms) {
  Transaction t(db());
  // Expired codes go, and a line keeps its newest few: asking again and
  // again for a code cannot grow the file.
  Stmt(db_, "DELETE FROM invites WHERE expires_ms <= ?1").bind(1, now_ms).run();
  Stmt(db_, "DELETE FROM invites WHERE line = ?1 AND rowid NOT IN"
            " (SELECT rowid FROM invites WHERE line = ?1 ORDER BY expires_ms DESC LIMIT ?2)")
      .bind(1, line)
      .bind(2, static_cast<std::int64_t>(kInvitesKept - 1))
      .run();
  Stmt(db_, "INSERT INTO invites(code_hash, line, expires_ms) VALUES(?1, ?2, ?3)")
      .blob(1, code_hash)
      .bind(2, line)
      .bind(3, expires_ms)
      .run();
  t.commit();
}

std::optional<LineKey> Store::invite_line(const std::string &code_hash, std::int64_t now_ms) {
  Stmt s(db(), "SELECT line FROM invites WHERE code_hash = ?1 AND expires_ms > ?2");
  s.blob(1, code_hash).bind(2, now_ms);
  return s.step() ? std::optional<LineKey>(s.integer(0)) : std::nullopt;
}

std::optional<LineKey> Store::take_invite(const std::string &code_hash, std::int64_t now_ms) {
  Transaction t(db());
  Stmt s(db_, "SELECT line, expires_ms FROM invites WHERE code_hash = ?1");
  s.blob(1, code_hash);
  std::optional<LineKey> line;
  if (s.step() && s.integer(1) > now_ms)
    line = s.integer(0);
  Stmt(db_, "DELETE FROM invites WHERE code_hash = ?1 OR expires_ms <= ?2").blob(1, code_hash).bind(2, now_ms).run();
  t.commit();
  return line;
}

void Store::add_missed(LineKey line, const std::string &caller, std::int64_t at_ms) {
  Transaction t(db());
  Stmt(db_, "INSERT INTO missed(line, caller, at_ms) VALUES(?1, ?2, ?3)")
      .bind(1, line)
      .bind(2, caller)
      .bind(3, at_ms)
      .run();
  Stmt(db_, "DELETE FROM missed WHERE line = ?1 AND rowid NOT IN"
            " (SELECT rowid FROM missed WHERE line = ?1 ORDER BY at_ms DESC, rowid DESC LIMIT ?2)")
      .bind(1, line)
      .bind(2, std::int64_t{kMissedKept})
      .run();
  t.commit();
}

std::vector<Missed> Store::missed(LineKey line, int limit) {
  Stmt s(db(), "SELECT caller, at_ms FROM missed WHERE line = ?1 ORDER BY at_ms DESC, rowid DESC LIMIT ?2");
  s.bind(1, line).bind(2, std::int64_t{limit});
  std::vector<Missed> out;
  while (s.step())
    out.push_back({s.text(0), s.integer(1)});
  return out;
}

void Store::set_subscription(const Subscription &sub, std::int64_t now_ms) {
  Stmt(db(), "INSERT OR REPLACE INTO push_subscriptions(device, endpoint, p256dh, auth, created_ms)"
             " VALUES(?1, ?2, ?3, ?4, ?5)")
      .bind(1, sub.device)
      .bind(2, sub.endpoint)
      .blob(3, sub.p256dh)
      .blob(4, sub.auth)
      .bind(5, now_ms)
      .run();
}

bool Store::remove_subscription(const std::string &device, const std::string &endpoint) {
  Stmt del(db(), endpoint.empty() ? "DELETE FROM push_subscriptions WHERE device = ?1"
                                  : "DELETE FROM push_subscriptions WHERE device = ?1 AND endpoint = ?2");
  del.bind(1, device);
  if (!endpoint.empty())
    del.bind(2, endpoint);
  del.run();
  return del.changes() > 0;
}

std::vector<Subscription> Store::subscriptions(LineKey line) {
  Stmt s(db(), "SELECT p.device, p.endpoint, p.p256dh, p.auth FROM push_subscriptions p"
               " JOIN devices d ON d.id = p.device WHERE d.line = ?1 ORDER BY d.created_ms, d.id");
  s.bind(1, line);
  std::vector<Subscription> out;
  while (s.step())
    out.push_back({s.text(0), s.text(1), s.text(2), s.text(3)});
  return out;
}

}  // namespace duet::ring
