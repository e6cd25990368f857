// Tests for the static file server's path resolution against real folder
// trees: files, index pages, dotfiles, and symlinks in and out of the root.
#include <catch2/catch.hpp>

extern "C" {
#include "web_path.h"
}

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

namespace {

// A fresh tree under a mkdtemp() folder, removed again by the destructor:
//   base/www/            the served root
//   base/outside/        a folder beside it that must never be served
//   base/wwwx/           a sibling whose name starts with the root's name
class WebTree {
public:
  WebTree() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "duet-web-path-XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    REQUIRE(mkdtemp(buf.data()) != nullptr);
    char resolved[PATH_MAX];
    REQUIRE(realpath(buf.data(), resolved) != nullptr);
    base = resolved;
    root = base + "/www";

    mkdir_rel("www");
    mkdir_rel("www/sub");
    mkdir_rel("www/empty");
    mkdir_rel("www/.git");
    mkdir_rel("www/index-out");
    mkdir_rel("outside");
    mkdir_rel("wwwx");
    write_rel("www/index.html", "root index");
    write_rel("www/app.js", "console.log(1);");
    write_rel("www/sub/index.html", "sub index");
    write_rel("www/sub/page.html", "sub page");
    write_rel("www/.env", "SECRET=1");
    write_rel("www/.git/config", "[core]");
    write_rel("www/caf\xc3\xa9.html", "utf-8 name");
    write_rel("outside/secret.txt", "outside");
    write_rel("outside/index.html", "outside index");
    write_rel("wwwx/secret.txt", "sibling");
    link_rel("app.js", "www/link-in");
    link_rel("sub", "www/sub-link");
    link_rel("../outside/secret.txt", "www/link-out");
    link_rel("../wwwx/secret.txt", "www/link-prefix");
    link_rel("../outside", "www/dir-out");
    link_rel(".env", "www/hidden-link");
    link_rel("nothing-here", "www/broken");
    link_rel("../../outside/secret.txt", "www/index-out/index.html");
    REQUIRE(mkfifo((base + "/www/pipe").c_str(), 0600) == 0);
  }

  ~WebTree() {
    std::error_code ec;
    std::filesystem::remove_all(base, ec);
  }

  WebTree(const WebTree &) = delete;
  WebTree &operator=(const WebTree &) = delete;

  duet_web_path_result_t resolve(const std::string &rel) {
    char out[PATH_MAX];
    duet_web_path_result_t r =
        duet__web_path_resolve(root.c_str(), rel.data(), rel.size(), out, sizeof(out), &st);
    real = out;
    return r;
  }

  std::string base;
  std::string root;
  std::string real;
  struct stat st {};

private:
  void mkdir_rel(const std::string &rel) { REQUIRE(mkdir((base + "/" + rel).c_str(), 0755) == 0); }

  void write_rel(const std::string &rel, const std::string &text) {
    std::ofstream f(base + "/" + rel, std::ios::binary);
    f << text;
    REQUIRE(f.good());
  }

  void link_rel(const std::string &target, const std::string &rel) {
    REQUIRE(symlink(target.c_str(), (base + "/" + rel).c_str()) == 0);
  }
};

} // namespace

TEST_CASE("an empty path serves the root index.html", "[web_path]") {
  WebTree t;
  REQUIRE(t.resolve("") == DUET_WEB_PATH_FILE);
  CHECK(t.real == t.root + "/index.html");
}

TEST_CASE("a single slash serves the root index.html", "[web_path]") {
  WebTree t;
  REQUIRE(t.resolve("/") == DUET_WEB_PATH_FILE);
  CHECK(t.real == t.root + "/index.html");
}

TEST_CASE("a file resolves with or without a leading slash", "[web_path]") {
  WebTree t;
  REQUIRE(t.resolve("/app.js") == DUET_WEB_PATH_FILE);
  CHECK(t.real == t.root + "/app.js");
  REQUIRE(t.resolve("app.js") == DUET_WEB_PATH_FILE);
  CHECK(t.real == t.root + "/app.js");
}

TEST_CASE("a resolved file comes with its stat", "[web_path]") {
  WebTree t;
  REQUIRE(t.resolve("/sub/page.html") == DUET_WEB_PATH_FILE);
  CHECK(S_ISREG(t.st.st_mode));
  CHECK(t.st.st_size == static_cast<off_t>(std::string("sub page").size()));
}

TEST_CASE("a folder with a trailing slash serves its index.html", "[web_path]") {
  WebTree t;
  REQUIRE(t.resolve("/sub/") == DUET_WEB_PATH_FILE);
  CHECK(t.real == t.root + "/sub/index.html");
}

TEST_CASE("a folder without a trailing slash asks for a redirect", "[web_path]") {
  WebTree t;
  CHECK(t.resolve("/sub") == DUET_WEB_PATH_REDIRECT_DIR);
  CHECK(t.real.empty());
}

TEST_CASE("a folder without index.html is not found", "[web_path]") {
  WebTree t;
  CHECK(t.resolve("/empty/") == DUET_WEB_PATH_NOT_FOUND);
}

TEST_CASE("a missing file is not found", "[web_path]") {
  WebTree t;
  CHECK(t.resolve("/nope.html") == DUET_WEB_PATH_NOT_FOUND);
}

TEST_CASE("a path through a file as if it were a folder is not found", "[web_path]") {
  WebTree t;
  CHECK(t.resolve("/app.js/more") == DUET_WEB_PATH_NOT_FOUND);
}

TEST_CASE("a trailing slash after a file name is not found", "[web_path]") {
  WebTree t;
  CHECK(t.resolve("/app.js/") == DUET_WEB_PATH_NOT_FOUND);
}

TEST_CASE("double slashes are collapsed", "[web_path]") {
  WebTree t;
  REQUIRE(t.resolve("//sub///page.html") == DUET_WEB_PATH_FILE);
  CHECK(t.real == t.root + "/sub/page.html");
}

TEST_CASE("a dot-dot segment is a bad request", "[web_path]") {
  WebTree t;
  CHECK(t.resolve("/../outside/secret.txt") == DUET_WEB_PATH_BAD_REQUEST);
  CHECK(t.resolve("/sub/../app.js") == DUET_WEB_PATH_BAD_REQUEST);
  CHECK(t.resolve("/sub/..") == DUET_WEB_PATH_BAD_REQUEST);
}

TEST_CASE("a single-dot segment is a bad request", "[web_path]") {
  WebTree t;
  CHECK(t.resolve("/./app.js") == DUET_WEB_PATH_BAD_REQUEST);
  CHECK(t.resolve("/sub/.") == DUET_WEB_PATH_BAD_REQUEST);
}

TEST_CASE("a dotfile is forbidden", "[web_path]") {
  WebTree t;
  CHECK(t.resolve("/.env") == DUET_WEB_PATH_FORBIDDEN);
  CHECK(t.real.empty());
}

TEST_CASE("a file inside a dot folder is forbidden", "[web_path]") {
  WebTree t;
  CHECK(t.resolve("/.git/config") == DUET_WEB_PATH_FORBIDDEN);
}

TEST_CASE("a missing dotfile is forbidden rather than not found", "[web_path]") {
  WebTree t;
  CHECK(t.resolve("/.htpasswd") == DUET_WEB_PATH_FORBIDDEN);
}

TEST_CASE("a bad segment outranks a dotfile segment", "[web_path]") {
  WebTree t;
  CHECK(t.resolve("/.git/../app.js") == DUET_WEB_PATH_BAD_REQUEST);
}

TEST_CASE("a backslash is a bad request", "[web_path]") {
  WebTree t;
  CHECK(t.resolve("/sub\\page.html") == DUET_WEB_PATH_BAD_REQUEST);
  CHECK(t.resolve("/..\\outside") == DUET_WEB_PATH_BAD_REQUEST);
}

TEST_CASE("an embedded NUL byte is a bad request", "[web_path]") {
  WebTree t;
  const std::string rel("/app.js\0.png", 12);
  CHECK(t.resolve(rel) == DUET_WEB_PATH_BAD_REQUEST);
}

TEST_CASE("a control character is a bad request", "[web_path]") {
  WebTree t;
  CHECK(t.resolve("/app\n.js") == DUET_WEB_PATH_BAD_REQUEST);
  CHECK(t.resolve("/app\x7f.js") == DUET_WEB_PATH_BAD_REQUEST);
}

TEST_CASE("a percent sign left after decoding is a bad request", "[web_path]") {
  WebTree t;
  CHECK(t.resolve("/%2e%2e/outside/secret.txt") == DUET_WEB_PATH_BAD_REQUEST);
}

TEST_CASE("only rel_len bytes of the path are read", "[web_path]") {
  WebTree t;
  const char rel[] = "/app.js/../../outside/secret.txt";
  char out[PATH_MAX];
  struct stat st;
  REQUIRE(duet__web_path_resolve(t.root.c_str(), rel, 7, out, sizeof(out), &st) == DUET_WEB_PATH_FILE);
  CHECK(std::string(out) == t.root + "/app.js");
}

TEST_CASE("a UTF-8 file name resolves", "[web_path]") {
  WebTree t;
  REQUIRE(t.resolve("/caf\xc3\xa9.html") == DUET_WEB_PATH_FILE);
  CHECK(t.real == t.root + "/caf\xc3\xa9.html");
}

TEST_CASE("a symlink inside the root resolves to its target", "[web_path]") {
  WebTree t;
  REQUIRE(t.resolve("/link-in") == DUET_WEB_PATH_FILE);
  CHECK(t.real == t.root + "/app.js");
}

TEST_CASE("a symlinked folder inside the root serves its files", "[web_path]") {
  WebTree t;
  REQUIRE(t.resolve("/sub-link/page.html") == DUET_WEB_PATH_FILE);
  CHECK(t.real == t.root + "/sub/page.html");
}

TEST_CASE("a symlink pointing outside the root is forbidden", "[web_path]") {
  WebTree t;
  CHECK(t.resolve("/link-out") == DUET_WEB_PATH_FORBIDDEN);
  CHECK(t.real.empty());
}

TEST_CASE("a symlink into a sibling folder that shares the root's name prefix is forbidden", "[web_path]") {
  WebTree t;
  CHECK(t.resolve("/link-prefix") == DUET_WEB_PATH_FORBIDDEN);
}

TEST_CASE("a symlinked folder leading outside the root is forbidden", "[web_path]") {
  WebTree t;
  CHECK(t.resolve("/dir-out/secret.txt") == DUET_WEB_PATH_FORBIDDEN);
  CHECK(t.resolve("/dir-out/") == DUET_WEB_PATH_FORBIDDEN);
  CHECK(t.resolve("/dir-out") == DUET_WEB_PATH_FORBIDDEN);
}

TEST_CASE("an index.html symlink leading outside the root is forbidden", "[web_path]") {
  WebTree t;
  CHECK(t.resolve("/index-out/") == DUET_WEB_PATH_FORBIDDEN);
}

TEST_CASE("a symlink to a dotfile inside the root is forbidden", "[web_path]") {
  WebTree t;
  CHECK(t.resolve("/hidden-link") == DUET_WEB_PATH_FORBIDDEN);
}

TEST_CASE("a broken symlink is not found", "[web_path]") {
  WebTree t;
  CHECK(t.resolve("/broken") == DUET_WEB_PATH_NOT_FOUND);
}

TEST_CASE("a named pipe is forbidden", "[web_path]") {
  WebTree t;
  CHECK(t.resolve("/pipe") == DUET_WEB_PATH_FORBIDDEN);
}

TEST_CASE("a path longer than the output buffer is a bad request", "[web_path]") {
  WebTree t;
  CHECK(t.resolve("/" + std::string(PATH_MAX + 10, 'a')) == DUET_WEB_PATH_BAD_REQUEST);
}

TEST_CASE("a real path that does not fit the output buffer is refused without overflow", "[web_path]") {
  WebTree t;
  const std::string rel = "/sub/page.html";
  const size_t out_len = t.root.size() + 5; // fits the root, not the file
  const size_t guard = 32;
  std::vector<char> out(out_len + guard, 'G');
  struct stat st;
  CHECK(duet__web_path_resolve(t.root.c_str(), rel.data(), rel.size(), out.data(), out_len, &st) ==
        DUET_WEB_PATH_BAD_REQUEST);
  CHECK(out[0] == '\0');
  for (size_t i = out_len; i < out.size(); i++)
    REQUIRE(out[i] == 'G');
}

TEST_CASE("a file whose real path just fits the output buffer resolves", "[web_path]") {
  WebTree t;
  const std::string rel = "/app.js";
  const std::string want = t.root + "/app.js";
  std::vector<char> out(want.size() + 1);
  struct stat st;
  REQUIRE(duet__web_path_resolve(t.root.c_str(), rel.data(), rel.size(), out.data(), out.size(), &st) ==
          DUET_WEB_PATH_FILE);
  CHECK(std::string(out.data()) == want);
}

TEST_CASE("content types follow the extension whatever its case", "[web_path]") {
  CHECK(std::string(duet__mime_type("/srv/www/index.html")) == "text/html; charset=utf-8");
  CHECK(std::string(duet__mime_type("INDEX.HTM")) == "text/html; charset=utf-8");
  CHECK(std::string(duet__mime_type("app.js")) == "text/javascript; charset=utf-8");
  CHECK(std::string(duet__mime_type("mod.MJS")) == "text/javascript; charset=utf-8");
  CHECK(std::string(duet__mime_type("site.Css")) == "text/css; charset=utf-8");
  CHECK(std::string(duet__mime_type("logo.svg")) == "image/svg+xml");
  CHECK(std::string(duet__mime_type("logo.png")) == "image/png");
  CHECK(std::string(duet__mime_type("photo.jpg")) == "image/jpeg");
  CHECK(std::string(duet__mime_type("photo.JPEG")) == "image/jpeg");
  CHECK(std::string(duet__mime_type("anim.gif")) == "image/gif");
  CHECK(std::string(duet__mime_type("pic.webp")) == "image/webp");
  CHECK(std::string(duet__mime_type("favicon.ico")) == "image/x-icon");
  CHECK(std::string(duet__mime_type("data.json")) == "application/json");
  CHECK(std::string(duet__mime_type("app.js.map")) == "application/json");
  CHECK(std::string(duet__mime_type("site.webmanifest")) == "application/manifest+json");
  CHECK(std::string(duet__mime_type("code.wasm")) == "application/wasm");
  CHECK(std::string(duet__mime_type("font.woff2")) == "font/woff2");
  CHECK(std::string(duet__mime_type("notes.txt")) == "text/plain; charset=utf-8");
}

TEST_CASE("an unknown or missing extension is served as application/octet-stream", "[web_path]") {
  CHECK(std::string(duet__mime_type("archive.tar.gz")) == "application/octet-stream");
  CHECK(std::string(duet__mime_type("Makefile")) == "application/octet-stream");
  CHECK(std::string(duet__mime_type("/srv/v1.2/README")) == "application/octet-stream");
  CHECK(std::string(duet__mime_type("file.")) == "application/octet-stream");
  CHECK(std::string(duet__mime_type(".html")) == "application/octet-stream");
}

TEST_CASE("a path equal to its parent or below it is inside", "[web_path]") {
  CHECK(duet__path_is_inside("/srv/www", "/srv/www") == 1);
  CHECK(duet__path_is_inside("/srv/www/key.pem", "/srv/www") == 1);
  CHECK(duet__path_is_inside("/srv/www/a/b/key.pem", "/srv/www/") == 1);
}

TEST_CASE("a sibling sharing the parent's name prefix is not inside", "[web_path]") {
  CHECK(duet__path_is_inside("/srv/www2/key.pem", "/srv/www") == 0);
  CHECK(duet__path_is_inside("/srv/ww", "/srv/www") == 0);
  CHECK(duet__path_is_inside("/etc/key.pem", "/srv/www") == 0);
}

TEST_CASE("every absolute path lies inside the file system root", "[web_path]") {
  CHECK(duet__path_is_inside("/etc/key.pem", "/") == 1);
  CHECK(duet__path_is_inside("/", "/") == 1);
}

TEST_CASE("a root of / resolves files below it", "[web_path]") {
  WebTree t;
  const std::string rel = t.root.substr(1) + "/app.js";
  char out[PATH_MAX];
  struct stat st;
  REQUIRE(duet__web_path_resolve("/", rel.data(), rel.size(), out, sizeof(out), &st) == DUET_WEB_PATH_FILE);
  CHECK(std::string(out) == t.root + "/app.js");
}
