// Tests for the self-signed development certificate: files, modes, what the
// certificate holds, reuse on later runs, replacement of broken pairs, and
// several makers at once on one folder (threads and processes).
#include <catch2/catch.hpp>

extern "C" {
#include "dev_cert.h"
}

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace {

std::string read_all(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void write_all(const std::string &path, const std::string &text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  REQUIRE(f.good());
}

mode_t mode_of(const std::string &path) {
  struct stat sb;
  REQUIRE(stat(path.c_str(), &sb) == 0);
  return sb.st_mode & 07777;
}

X509 *load_cert(const std::string &path) {
  BIO *b = BIO_new_file(path.c_str(), "r");
  REQUIRE(b != nullptr);
  X509 *x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  return x;
}

EVP_PKEY *load_key(const std::string &path) {
  BIO *b = BIO_new_file(path.c_str(), "r");
  REQUIRE(b != nullptr);
  EVP_PKEY *k = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  return k;
}

void save_cert(const std::string &path, X509 *x) {
  BIO *b = BIO_new_file(path.c_str(), "w");
  REQUIRE(b != nullptr);
  CHECK(PEM_write_bio_X509(b, x) == 1);
  BIO_free(b);
}

// Every subjectAltName entry as "DNS:name" or "IP:address".
std::set<std::string> alt_names(X509 *x) {
  std::set<std::string> names;
  auto *gens = static_cast<GENERAL_NAMES *>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  REQUIRE(gens != nullptr);
  for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
    const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
    if (gn->type == GEN_DNS) {
      const ASN1_IA5STRING *s = gn->d.dNSName;
      names.insert("DNS:" + std::string(reinterpret_cast<const char *>(ASN1_STRING_get0_data(s)),
                                        static_cast<size_t>(ASN1_STRING_length(s))));
    } else if (gn->type == GEN_IPADD) {
      const ASN1_OCTET_STRING *ip = gn->d.iPAddress;
      char text[INET6_ADDRSTRLEN] = "";
      int family = ASN1_STRING_length(ip) == 4 ? AF_INET : AF_INET6;
      REQUIRE((ASN1_STRING_length(ip) == 4 || ASN1_STRING_length(ip) == 16));
      REQUIRE(inet_ntop(family, ASN1_STRING_get0_data(ip), text, sizeof(text)) != nullptr);
      names.insert(std::string("IP:") + text);
    }
  }
  GENERAL_NAMES_free(gens);
  return names;
}

std::string name_entry(const X509_NAME *name, int nid) {
  char buf[256];
  int n = X509_NAME_get_text_by_NID(name, nid, buf, sizeof(buf));
  return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
}

int ext_critical(X509 *x, int nid) {
  int at = X509_get_ext_by_NID(x, nid, -1);
  REQUIRE(at >= 0);
  return X509_EXTENSION_get_critical(X509_get_ext(x, at));
}

// A state folder two levels below a fresh mkdtemp() folder, so that the
// parents have to be made too. The destructor removes everything.
class StateDir {
public:
  StateDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "duet-dev-cert-XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    REQUIRE(mkdtemp(buf.data()) != nullptr);
    base = buf.data();
    dir = base + "/state/duet";
  }

  ~StateDir() {
    std::error_code ec;
    std::filesystem::remove_all(base, ec);
  }

  StateDir(const StateDir &) = delete;
  StateDir &operator=(const StateDir &) = delete;

  int ensure() {
    char cert_buf[PATH_MAX];
    char key_buf[PATH_MAX];
    char err_buf[512];
    created = -1;
    int rc = duet__dev_cert_ensure(dir.c_str(), cert_buf, sizeof(cert_buf), key_buf, sizeof(key_buf), &created, err_buf,
                                   sizeof(err_buf));
    cert = cert_buf;
    key = key_buf;
    err = err_buf;
    return rc;
  }

  // Runs ensure() and requires it to succeed, showing its message if not.
  void ensure_ok() {
    int rc = ensure();
    INFO("error: " << err);
    REQUIRE(rc == 0);
  }

  std::string base;
  std::string dir;
  std::string cert;
  std::string key;
  std::string err;
  int created = -1;
};

}  // namespace

TEST_CASE("a first call makes the key and certificate in a new state folder", "[dev_cert]") {
  StateDir s;
  s.ensure_ok();
  CHECK(s.created == 1);
  CHECK(s.err.empty());
  CHECK(s.cert == s.dir + "/dev-cert.pem");
  CHECK(s.key == s.dir + "/dev-key.pem");
  CHECK(std::filesystem::is_regular_file(s.cert));
  CHECK(std::filesystem::is_regular_file(s.key));
}

TEST_CASE("the state folder and its missing parents are made with mode 0700", "[dev_cert]") {
  StateDir s;
  s.ensure_ok();
  CHECK(mode_of(s.dir) == 0700);
  CHECK(mode_of(s.base + "/state") == 0700);
}

TEST_CASE("the key file is 0600 and the certificate 0644", "[dev_cert]") {
  StateDir s;
  s.ensure_ok();
  CHECK(mode_of(s.key) == 0600);
  CHECK(mode_of(s.cert) == 0644);
}

TEST_CASE("the file modes hold even under a strict umask", "[dev_cert]") {
  StateDir s;
  mode_t old = umask(077);
  int rc = s.ensure();
  umask(old);
  INFO("error: " << s.err);
  REQUIRE(rc == 0);
  CHECK(mode_of(s.key) == 0600);
  CHECK(mode_of(s.cert) == 0644);
}

TEST_CASE("only the key and certificate are left in the state folder", "[dev_cert]") {
  StateDir s;
  s.ensure_ok();
  std::set<std::string> names;
  for (const auto &entry : std::filesystem::directory_iterator(s.dir))
    names.insert(entry.path().filename().string());
  // The lock stays: removing it could let two makers lock two files.
  CHECK(names == std::set<std::string>{"dev-cert.pem", "dev-key.pem", "dev-cert.lock"});
  CHECK(mode_of(s.dir + "/dev-cert.lock") == 0600);
}

TEST_CASE("the key is an ECDSA P-256 key", "[dev_cert]") {
  StateDir s;
  s.ensure_ok();
  EVP_PKEY *k = load_key(s.key);
  REQUIRE(k != nullptr);
  CHECK(EVP_PKEY_get_base_id(k) == EVP_PKEY_EC);
  char group[64] = "";
  size_t len = 0;
  CHECK(EVP_PKEY_get_group_name(k, group, sizeof(group), &len) == 1);
  CHECK(std::string(group) == "prime256v1");
  EVP_PKEY_free(k);
}

TEST_CASE("the key matches the certificate", "[dev_cert]") {
  StateDir s;
  s.ensure_ok();
  X509 *x = load_cert(s.cert);
  EVP_PKEY *k = load_key(s.key);
  REQUIRE(x != nullptr);
  REQUIRE(k != nullptr);
  CHECK(X509_check_private_key(x, k) == 1);
  CHECK(X509_verify(x, k) == 1);
  X509_free(x);
  EVP_PKEY_free(k);
}

TEST_CASE("the certificate names localhost and both loopback addresses", "[dev_cert]") {
  StateDir s;
  s.ensure_ok();
  X509 *x = load_cert(s.cert);
  REQUIRE(x != nullptr);
  std::set<std::string> names = alt_names(x);
  CHECK(names.count("DNS:localhost") == 1);
  CHECK(names.count("IP:127.0.0.1") == 1);
  CHECK(names.count("IP:::1") == 1);
  CHECK(X509_check_host(x, "localhost", 0, 0, nullptr) == 1);
  CHECK(X509_check_ip_asc(x, "127.0.0.1", 0) == 1);
  CHECK(X509_check_ip_asc(x, "::1", 0) == 1);
  X509_free(x);
}

TEST_CASE("the certificate names the machine when its hostname is a plain DNS name", "[dev_cert]") {
  char host[256] = "";
  REQUIRE(gethostname(host, sizeof(host) - 1) == 0);
  std::string h(host);
  bool plain =
      !h.empty() && h != "localhost" && h.size() <= 63 && h.front() != '-' && h.back() != '-' &&
      h.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == std::string::npos &&
      h.find_first_not_of("0123456789") != std::string::npos;
  StateDir s;
  s.ensure_ok();
  X509 *x = load_cert(s.cert);
  REQUIRE(x != nullptr);
  std::set<std::string> names = alt_names(x);
  INFO("hostname: " << h);
  if (plain)
    CHECK(names.count("DNS:" + h) == 1);
  else if (h == "localhost")
    CHECK(names.size() == 3);
  X509_free(x);
}

TEST_CASE("the certificate is a self-signed version 3 certificate for CN=localhost", "[dev_cert]") {
  StateDir s;
  s.ensure_ok();
  X509 *x = load_cert(s.cert);
  REQUIRE(x != nullptr);
  CHECK(X509_get_version(x) == X509_VERSION_3);
  CHECK(name_entry(X509_get_subject_name(x), NID_commonName) == "localhost");
  CHECK(name_entry(X509_get_subject_name(x), NID_organizationName) == "duet development certificate");
  CHECK(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) == 0);
  CHECK(X509_get_signature_nid(x) == NID_ecdsa_with_SHA256);
  X509_free(x);
}

TEST_CASE("the certificate is valid from an hour ago for 397 days", "[dev_cert]") {
  StateDir s;
  time_t before = time(nullptr);
  s.ensure_ok();
  time_t after = time(nullptr);
  X509 *x = load_cert(s.cert);
  REQUIRE(x != nullptr);

  int days = 0;
  int secs = 0;
  REQUIRE(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)) == 1);
  CHECK(days == 397);
  CHECK(secs == 0);

  struct tm tm {};
  REQUIRE(ASN1_TIME_to_tm(X509_get0_notBefore(x), &tm) == 1);
  time_t not_before = timegm(&tm);
  CHECK(not_before >= before - 3600 - 1);
  CHECK(not_before <= after - 3600 + 1);
  X509_free(x);
}

TEST_CASE("the certificate is for a TLS server and cannot act as a CA", "[dev_cert]") {
  StateDir s;
  s.ensure_ok();
  X509 *x = load_cert(s.cert);
  REQUIRE(x != nullptr);
  CHECK(X509_check_ca(x) == 0);
  CHECK(ext_critical(x, NID_basic_constraints) == 1);
  CHECK(ext_critical(x, NID_key_usage) == 1);
  CHECK(X509_get_key_usage(x) == KU_DIGITAL_SIGNATURE);
  CHECK(X509_get_extended_key_usage(x) == XKU_SSL_SERVER);
  CHECK(X509_get0_subject_key_id(x) != nullptr);
  CHECK(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0) == 1);
  X509_free(x);
}

TEST_CASE("the serial number is positive, random and at most 128 bits", "[dev_cert]") {
  StateDir a;
  StateDir b;
  a.ensure_ok();
  b.ensure_ok();
  X509 *xa = load_cert(a.cert);
  X509 *xb = load_cert(b.cert);
  REQUIRE(xa != nullptr);
  REQUIRE(xb != nullptr);
  BIGNUM *sa = ASN1_INTEGER_to_BN(X509_get0_serialNumber(xa), nullptr);
  BIGNUM *sb = ASN1_INTEGER_to_BN(X509_get0_serialNumber(xb), nullptr);
  REQUIRE(sa != nullptr);
  REQUIRE(sb != nullptr);
  CHECK(!BN_is_negative(sa));
  CHECK(!BN_is_zero(sa));
  CHECK(BN_num_bits(sa) <= 128);
  CHECK(BN_cmp(sa, sb) != 0);
  BN_free(sa);
  BN_free(sb);
  X509_free(xa);
  X509_free(xb);
}

TEST_CASE("a second call reuses the existing pair unchanged", "[dev_cert]") {
  StateDir s;
  s.ensure_ok();
  REQUIRE(s.created == 1);
  std::string cert_bytes = read_all(s.cert);
  std::string key_bytes = read_all(s.key);
  s.ensure_ok();
  CHECK(s.created == 0);
  CHECK(read_all(s.cert) == cert_bytes);
  CHECK(read_all(s.key) == key_bytes);
}

TEST_CASE("a corrupted certificate file is replaced by a new pair", "[dev_cert]") {
  StateDir s;
  s.ensure_ok();
  std::string old_key = read_all(s.key);
  write_all(s.cert, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
  s.ensure_ok();
  CHECK(s.created == 1);
  CHECK(read_all(s.key) != old_key);
  X509 *x = load_cert(s.cert);
  EVP_PKEY *k = load_key(s.key);
  REQUIRE(x != nullptr);
  REQUIRE(k != nullptr);
  CHECK(X509_check_private_key(x, k) == 1);
  X509_free(x);
  EVP_PKEY_free(k);
}

TEST_CASE("a missing key file is replaced by a new pair", "[dev_cert]") {
  StateDir s;
  s.ensure_ok();
  REQUIRE(unlink(s.key.c_str()) == 0);
  s.ensure_ok();
  CHECK(s.created == 1);
  CHECK(mode_of(s.key) == 0600);
}

TEST_CASE("a certificate that does not match the key is replaced", "[dev_cert]") {
  StateDir a;
  StateDir b;
  a.ensure_ok();
  b.ensure_ok();
  write_all(a.cert, read_all(b.cert));
  a.ensure_ok();
  CHECK(a.created == 1);
  X509 *x = load_cert(a.cert);
  EVP_PKEY *k = load_key(a.key);
  REQUIRE(x != nullptr);
  REQUIRE(k != nullptr);
  CHECK(X509_check_private_key(x, k) == 1);
  X509_free(x);
  EVP_PKEY_free(k);
}

TEST_CASE("a certificate expiring within a day is replaced", "[dev_cert]") {
  StateDir s;
  s.ensure_ok();
  // Re-sign the same certificate with an end an hour from now, so that only
  // the expiry makes it unusable.
  X509 *x = load_cert(s.cert);
  EVP_PKEY *k = load_key(s.key);
  REQUIRE(x != nullptr);
  REQUIRE(k != nullptr);
  REQUIRE(X509_gmtime_adj(X509_getm_notAfter(x), 3600) != nullptr);
  REQUIRE(X509_sign(x, k, EVP_sha256()) > 0);
  save_cert(s.cert, x);
  X509_free(x);
  EVP_PKEY_free(k);

  s.ensure_ok();
  CHECK(s.created == 1);
  X509 *renewed = load_cert(s.cert);
  REQUIRE(renewed != nullptr);
  int days = 0;
  int secs = 0;
  REQUIRE(ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter(renewed)) == 1);
  CHECK(days >= 396);
  X509_free(renewed);
}

TEST_CASE("a state folder path through a regular file fails with a message naming it", "[dev_cert]") {
  StateDir s;
  REQUIRE(mkdir((s.base + "/state").c_str(), 0700) == 0);
  write_all(s.base + "/state/duet", "a file where the folder should be");
  s.dir = s.base + "/state/duet/inner";
  CHECK(s.ensure() == -ENOTDIR);
  CHECK(s.created == 0);
  CHECK(s.err.find(s.base + "/state/duet") != std::string::npos);
  CHECK(s.err.find("not a folder") != std::string::npos);
}

TEST_CASE("output buffers too small for the file paths are refused", "[dev_cert]") {
  StateDir s;
  char cert_buf[8];
  char key_buf[PATH_MAX];
  char err_buf[512];
  int created = -1;
  CHECK(duet__dev_cert_ensure(s.dir.c_str(), cert_buf, sizeof(cert_buf), key_buf, sizeof(key_buf), &created, err_buf,
                              sizeof(err_buf)) == -ENAMETOOLONG);
  CHECK(created == 0);
  CHECK(std::strlen(err_buf) > 0);
  CHECK(!std::filesystem::exists(s.dir));
}

TEST_CASE("a trailing slash on the state folder gives clean file paths", "[dev_cert]") {
  StateDir s;
  const std::string plain = s.dir;
  s.dir += "/";
  s.ensure_ok();
  CHECK(s.cert == plain + "/dev-cert.pem");
  CHECK(s.key == plain + "/dev-key.pem");
}

namespace {

// Names in dir that look like a writer's temporary (NAME.tmp.XXXXXX).
std::vector<std::string> temporaries(const std::string &dir) {
  std::vector<std::string> found;
  for (const auto &entry : std::filesystem::directory_iterator(dir))
    if (entry.path().filename().string().find(".tmp.") != std::string::npos)
      found.push_back(entry.path().filename().string());
  return found;
}

// Whether the certificate and key files at these paths load and match.
bool files_match(const std::string &cert, const std::string &key) {
  X509 *x = load_cert(cert);
  EVP_PKEY *k = load_key(key);
  bool ok = x && k && X509_check_private_key(x, k) == 1;
  X509_free(x);
  EVP_PKEY_free(k);
  return ok;
}

// What one maker saw: its result and the files right after it returned.
struct Seen {
  int rc = -1;
  int created = -1;
  std::string err;
  std::string cert_bytes;
  std::string key_bytes;
};

Seen ensure_once(const std::string &dir) {
  char cert_buf[PATH_MAX];
  char key_buf[PATH_MAX];
  char err_buf[512];
  Seen seen;
  seen.rc = duet__dev_cert_ensure(dir.c_str(), cert_buf, sizeof(cert_buf), key_buf, sizeof(key_buf), &seen.created,
                                  err_buf, sizeof(err_buf));
  seen.err = err_buf;
  if (seen.rc == 0) {
    seen.cert_bytes = read_all(cert_buf);
    seen.key_bytes = read_all(key_buf);
  }
  return seen;
}

// All makers succeeded, exactly one made the pair, and all saw the pair
// that is in the folder now, whose key matches its certificate.
void check_one_pair(const StateDir &s, const std::vector<Seen> &seen) {
  int made = 0;
  const std::string cert_bytes = read_all(s.dir + "/dev-cert.pem");
  const std::string key_bytes = read_all(s.dir + "/dev-key.pem");
  for (size_t i = 0; i < seen.size(); i++) {
    INFO("maker " << i << ": rc " << seen[i].rc << ", error: " << seen[i].err);
    CHECK(seen[i].rc == 0);
    CHECK((seen[i].created == 0 || seen[i].created == 1));
    made += seen[i].created == 1 ? 1 : 0;
    CHECK(seen[i].cert_bytes == cert_bytes);
    CHECK(seen[i].key_bytes == key_bytes);
  }
  CHECK(made == 1);
  CHECK(files_match(s.dir + "/dev-cert.pem", s.dir + "/dev-key.pem"));
  CHECK(mode_of(s.dir + "/dev-key.pem") == 0600);
  CHECK(temporaries(s.dir).empty());
}

}  // namespace

TEST_CASE("threads making the pair at once on one folder all end with the same matching pair", "[dev_cert]") {
  // Rounds, each on a fresh folder: one round can miss the race by luck.
  for (int round = 0; round < 5; round++) {
    StateDir s;
    const int kThreads = 8;
    std::vector<Seen> seen(kThreads);
    std::vector<std::thread> threads;
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    for (int i = 0; i < kThreads; i++)
      threads.emplace_back([&, i] {
        ready++;
        while (!go.load())
          std::this_thread::yield();
        seen[static_cast<size_t>(i)] = ensure_once(s.dir);
      });
    while (ready.load() < kThreads)
      std::this_thread::yield();
    go = true;
    for (auto &t : threads)
      t.join();
    INFO("round " << round);
    check_one_pair(s, seen);
  }
}

namespace {

// Writes all of text to fd; for a forked child, which must not use Catch.
bool put(int fd, const std::string &text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// A child: waits for the start pipe to close, makes the pair, and writes
// what it saw to out_path as "rc created\n<cert bytes><key bytes>".
[[noreturn]] void child_maker(int start_fd, const std::string &dir, const std::string &out_path) {
  char c;
  while (read(start_fd, &c, 1) < 0 && errno == EINTR) {
  }
  Seen seen = ensure_once(dir);
  int fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  bool ok = fd >= 0 &&
            put(fd, std::to_string(seen.rc) + " " + std::to_string(seen.created) + " " +
                        std::to_string(seen.cert_bytes.size()) + "\n" + seen.cert_bytes + seen.key_bytes + seen.err);
  if (fd >= 0)
    close(fd);
  _exit(ok ? 0 : 3);
}

Seen parse_child(const std::string &text) {
  Seen seen;
  std::istringstream in(text);
  size_t cert_len = 0;
  in >> seen.rc >> seen.created >> cert_len;
  size_t body = text.find('\n') + 1;
  seen.cert_bytes = text.substr(body, cert_len);
  seen.key_bytes = text.substr(body + cert_len);
  if (seen.rc != 0) {
    seen.err = seen.key_bytes;
    seen.key_bytes.clear();
  }
  return seen;
}

}  // namespace

TEST_CASE("processes making the pair at once on one folder all end with the same matching pair", "[dev_cert]") {
  for (int round = 0; round < 3; round++) {
    StateDir s;
    const int kChildren = 6;
    int start[2];
    REQUIRE(pipe(start) == 0);
    std::vector<pid_t> pids;
    for (int i = 0; i < kChildren; i++) {
      pid_t pid = fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        close(start[1]);
        child_maker(start[0], s.dir, s.base + "/seen-" + std::to_string(i));
      }
      pids.push_back(pid);
    }
    close(start[0]);
    // Closing the write end wakes every child at once (read sees EOF).
    close(start[1]);
    std::vector<Seen> seen;
    for (size_t i = 0; i < pids.size(); i++) {
      int status = 0;
      REQUIRE(waitpid(pids[i], &status, 0) == pids[i]);
      INFO("child " << i << " status " << status);
      REQUIRE(WIFEXITED(status));
      REQUIRE(WEXITSTATUS(status) == 0);
      seen.push_back(parse_child(read_all(s.base + "/seen-" + std::to_string(i))));
    }
    INFO("round " << round);
    check_one_pair(s, seen);
  }
}

TEST_CASE("a maker waits while another holds the state folder's lock", "[dev_cert]") {
  StateDir s;
  REQUIRE(std::filesystem::create_directories(s.dir));
  int held = open((s.dir + "/dev-cert.lock").c_str(), O_RDWR | O_CREAT, 0600);
  REQUIRE(held >= 0);
  REQUIRE(flock(held, LOCK_EX) == 0);
  std::atomic<bool> done{false};
  Seen seen;
  std::thread maker([&] {
    seen = ensure_once(s.dir);
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(!done.load());
  CHECK(!std::filesystem::exists(s.dir + "/dev-key.pem"));
  close(held);
  maker.join();
  INFO("error: " << seen.err);
  CHECK(seen.rc == 0);
  CHECK(seen.created == 1);
  CHECK(files_match(s.dir + "/dev-cert.pem", s.dir + "/dev-key.pem"));
}

TEST_CASE("a usable pair is taken without waiting for the lock", "[dev_cert]") {
  StateDir s;
  s.ensure_ok();
  int held = open((s.dir + "/dev-cert.lock").c_str(), O_RDWR);
  REQUIRE(held >= 0);
  REQUIRE(flock(held, LOCK_EX) == 0);
  std::atomic<bool> done{false};
  Seen seen;
  std::thread reader([&] {
    seen = ensure_once(s.dir);
    done = true;
  });
  // The reader must finish although the lock is held; give it ample time.
  for (int i = 0; i < 200 && !done.load(); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  bool finished = done.load();
  close(held);
  reader.join();
  CHECK(finished);
  CHECK(seen.rc == 0);
  CHECK(seen.created == 0);
}

TEST_CASE("temporaries left by a writer that died are removed when a pair is made", "[dev_cert]") {
  StateDir s;
  REQUIRE(std::filesystem::create_directories(s.dir));
  write_all(s.dir + "/dev-key.pem.tmp.Ab12Cd", "-----BEGIN PRIVATE KEY-----\nhalf");
  write_all(s.dir + "/dev-cert.pem.tmp.zZ9xY8", "-----BEGIN CERTIFICATE-----\nhalf");
  write_all(s.dir + "/notes.txt", "someone else's file");
  s.ensure_ok();
  CHECK(s.created == 1);
  CHECK(temporaries(s.dir).empty());
  CHECK(read_all(s.dir + "/notes.txt") == "someone else's file");
}

TEST_CASE("a certificate path that cannot be replaced fails naming it and leaves no temporary", "[dev_cert]") {
  StateDir s;
  // A folder where the certificate should be: rename() onto it fails.
  REQUIRE(std::filesystem::create_directories(s.dir + "/dev-cert.pem/inside"));
  CHECK(s.ensure() == -EISDIR);
  CHECK(s.created == 0);
  CHECK(s.err.find(s.dir + "/dev-cert.pem") != std::string::npos);
  CHECK(s.err.find("Cannot write the development certificate") != std::string::npos);
  CHECK(temporaries(s.dir).empty());
}

TEST_CASE("a lock file that cannot be opened fails with a message naming it", "[dev_cert]") {
  StateDir s;
  REQUIRE(std::filesystem::create_directories(s.dir + "/dev-cert.lock"));
  CHECK(s.ensure() == -EISDIR);
  CHECK(s.created == 0);
  CHECK(s.err.find(s.dir + "/dev-cert.lock") != std::string::npos);
  CHECK(s.err.find("lock file") != std::string::npos);
  CHECK(!std::filesystem::exists(s.dir + "/dev-key.pem"));
}
