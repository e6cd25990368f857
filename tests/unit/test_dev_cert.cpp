// Tests for the self-signed development certificate: files, modes, what the
// certificate holds, reuse on later runs and replacement of broken pairs.
#include <catch2/catch.hpp>

extern "C" {
#include "dev_cert.h"
}

#include <cerrno>
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
#include <vector>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
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
    int rc = duet__dev_cert_ensure(dir.c_str(), cert_buf, sizeof(cert_buf), key_buf, sizeof(key_buf), &created,
                                   err_buf, sizeof(err_buf));
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

} // namespace

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
  CHECK(names == std::set<std::string>{"dev-cert.pem", "dev-key.pem"});
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
  bool plain = !h.empty() && h != "localhost" && h.size() <= 63 && h.front() != '-' && h.back() != '-' &&
               h.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") ==
                   std::string::npos &&
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
  CHECK(duet__dev_cert_ensure(s.dir.c_str(), cert_buf, sizeof(cert_buf), key_buf, sizeof(key_buf), &created,
                              err_buf, sizeof(err_buf)) == -ENAMETOOLONG);
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
