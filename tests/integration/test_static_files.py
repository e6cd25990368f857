"""duetd's static file server: types, HEAD, ETag, redirects, mounts, and every
way of escaping the web root we could think of.

Run: DUETD=build/core/duetd /usr/bin/python3 tests/integration/test_static_files.py
"""

import os
import shutil
import tempfile
import unittest
import urllib.parse
import uuid

from duet_harness import ConnectionClosedEarly, Server, make_cert, raw_request, run_duetd, stop_checked

SECRET = ('DUET-SECRET-%s' % uuid.uuid4().hex).encode()
PASSWD_MARK = b'root:x:0:0'

CONTENT_TYPES = {
    'index.html': 'text/html; charset=utf-8',
    'app.js': 'text/javascript; charset=utf-8',
    'mod.mjs': 'text/javascript; charset=utf-8',
    'style.css': 'text/css; charset=utf-8',
    'img.svg': 'image/svg+xml',
    'img.png': 'image/png',
    'photo.jpg': 'image/jpeg',
    'favicon.ico': 'image/x-icon',
    'data.json': 'application/json',
    'app.webmanifest': 'application/manifest+json',
    'mod.wasm': 'application/wasm',
    'readme.txt': 'text/plain; charset=utf-8',
}

FILES = {
    'index.html': b'<!doctype html><title>duet</title><p>root index</p>\n',
    'app.js': b'export const answer = 42;\n',
    'mod.mjs': b'export default function f() { return "\xc3\xa9"; }\n',
    'style.css': b'body { color: #123; }\n',
    'img.svg': b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>\n',
    'img.png': b'\x89PNG\r\n\x1a\n' + bytes(range(256)) * 4,
    'photo.jpg': b'\xff\xd8\xff\xe0' + bytes(reversed(range(256))) * 3 + b'\xff\xd9',
    'favicon.ico': b'\x00\x00\x01\x00\x01\x00' + b'\x10' * 100,
    'data.json': b'{"hello": "world", "n": [1, 2, 3]}\n',
    'app.webmanifest': b'{"name": "duet", "start_url": "/"}\n',
    'mod.wasm': b'\x00asm\x01\x00\x00\x00',
    'readme.txt': 'plain text, with unicode: \u00e9\u65e5\n'.encode(),
    'sub/index.html': b'<!doctype html><p>sub index</p>\n',
    'sub/file.txt': b'a file in a sub folder\n',
    'sub/.git/config': b'[core]\n\trepositoryformatversion = 0\n' + SECRET + b'-git\n',
    '.hidden': b'dotfile ' + SECRET + b'-dot\n',
}

EXTRA_FILES = {
    'hello.txt': b'hello from the extra mount\n',
    'index.html': b'<!doctype html><p>extra index</p>\n',
}

REFUSED_PATHS = [
    '/../secret.txt',
    '/%2e%2e/secret.txt',
    '/%2E%2E/secret.txt',
    '/%2e%2e%2fsecret.txt',
    '/..%2fsecret.txt',
    '/..%2Fsecret.txt',
    '/.%2e/secret.txt',
    '/sub/../../secret.txt',
    '/sub/%2e%2e/%2e%2e/secret.txt',
    '/sub/..%2f..%2fsecret.txt',
    '/sub/..%5c..%5csecret.txt',
    '/sub/..%5C..%5Csecret.txt',
    '/a\\..\\secret.txt',
    '/a\\..\\..\\secret.txt',
    '/sub\\..\\..\\secret.txt',
    '/%00index.html',
    '/.hidden',
    '/%2ehidden',
    '/sub/.git/config',
    '/link-out/secret.txt',
    '/link-file',
]

# More of the same kind, beyond the contract's list. For these, dropping the
# connection without an answer also counts as refusing.
MORE_REFUSED_PATHS = [
    '/index.html%00.txt',
    '/index.html%00',
    '/sub/%2egit/config',
    '/sub/.git/',
    '/link-out/',
    '/sub/link-up/secret.txt',
    '/extra/../secret.txt',
    '/extra/%2e%2e/secret.txt',
    '/extra/..%2fsecret.txt',
    '/extra/..%5csecret.txt',
    '/..%2f..%2f..%2f..%2f..%2f..%2fetc/passwd',
    '/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd',
    '/../../../../../../etc/passwd',
    '//etc/passwd',
    '/%2fetc%2fpasswd',
]


class StaticFilesTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='duet-static-')
        # The secret lives OUTSIDE the web root, one level up, and in a
        # folder the symlinks point to.
        with open(os.path.join(cls.tmp, 'secret.txt'), 'wb') as f:
            f.write(SECRET + b'\n')
        outside = os.path.join(cls.tmp, 'outside')
        os.makedirs(outside)
        with open(os.path.join(outside, 'secret.txt'), 'wb') as f:
            f.write(SECRET + b'-outside\n')
        cls.web = os.path.join(cls.tmp, 'web')
        for name, data in FILES.items():
            path = os.path.join(cls.web, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'wb') as f:
                f.write(data)
        os.symlink(outside, os.path.join(cls.web, 'link-out'))
        os.symlink(os.path.join(cls.tmp, 'secret.txt'), os.path.join(cls.web, 'link-file'))
        os.symlink('../..', os.path.join(cls.web, 'sub', 'link-up'))
        cls.extra = os.path.join(cls.tmp, 'extra')
        os.makedirs(cls.extra)
        for name, data in EXTRA_FILES.items():
            with open(os.path.join(cls.extra, name), 'wb') as f:
                f.write(data)
        cls.server = Server(web_root=cls.web, extra_args=['--mount', '/extra=' + cls.extra])
        cls.server.__enter__()

    @classmethod
    def tearDownClass(cls):
        try:
            stop_checked(cls.server)
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def tearDown(self):
        self.server.assert_alive()

    def request(self, method, target, headers=None):
        resp = raw_request(self.server, (method, target, headers or {}))
        # Whatever the request, the secret never leaks.
        self.assertNotIn(SECRET, resp.body, '%s %s leaked the secret' % (method, target))
        self.assertNotIn(SECRET, resp.raw_head, '%s %s leaked the secret' % (method, target))
        return resp

    def get(self, target, headers=None):
        return self.request('GET', target, headers)

    def assertOk(self, resp, body, ctype, what):
        self.assertEqual(resp.status, 200, '%s: %r' % (what, resp))
        self.assertEqual(resp.body, body, what)
        self.assertEqual(resp.header('Content-Type'), ctype, what)

    # ---- serving ---------------------------------------------------------

    def test_every_file_type_is_served_with_its_content_type(self):
        for name, ctype in CONTENT_TYPES.items():
            with self.subTest(name=name):
                resp = self.get('/' + name)
                self.assertOk(resp, FILES[name], ctype, name)
                cl = resp.header('Content-Length')
                if cl is not None:
                    self.assertEqual(int(cl), len(FILES[name]), name)

    def test_the_root_serves_index_html(self):
        self.assertOk(self.get('/'), FILES['index.html'], 'text/html; charset=utf-8', '/')

    def test_a_folder_with_a_trailing_slash_serves_its_index_html(self):
        self.assertOk(self.get('/sub/'), FILES['sub/index.html'], 'text/html; charset=utf-8',
                      '/sub/')
        self.assertOk(self.get('/sub/file.txt'), FILES['sub/file.txt'],
                      'text/plain; charset=utf-8', '/sub/file.txt')

    def test_a_folder_without_a_trailing_slash_redirects_to_the_slash_form(self):
        for path in ['/sub', '/extra']:
            with self.subTest(path=path):
                resp = self.get(path)
                self.assertEqual(resp.status, 301, '%s: %r' % (path, resp))
                location = resp.header('Location')
                self.assertIsNotNone(location, '301 without Location')
                self.assertEqual(urllib.parse.urlsplit(location).path, path + '/', location)

    def test_head_gives_the_headers_and_content_length_without_a_body(self):
        for name in ['index.html', 'img.png', 'app.js']:
            with self.subTest(name=name):
                resp = self.request('HEAD', '/' + name)
                self.assertEqual(resp.status, 200, resp)
                self.assertEqual(resp.header('Content-Length'), str(len(FILES[name])))
                self.assertEqual(resp.header('Content-Type'), CONTENT_TYPES[name])
                self.assertEqual(resp.body, b'', 'HEAD must not send a body')

    def test_a_missing_file_is_404(self):
        for path in ['/missing.html', '/sub/missing.txt', '/nope/', '/extra/missing.txt',
                     '/index.html/x']:
            with self.subTest(path=path):
                resp = self.get(path)
                self.assertEqual(resp.status, 404, '%s: %r' % (path, resp))

    def test_an_etag_is_sent_and_if_none_match_gives_304_without_body(self):
        for name in ['readme.txt', 'img.png']:
            with self.subTest(name=name):
                resp = self.get('/' + name)
                self.assertEqual(resp.status, 200)
                etag = resp.header('ETag')
                self.assertTrue(etag, 'no ETag header on %s' % name)
                again = self.get('/' + name)
                self.assertEqual(again.header('ETag'), etag, 'ETag not stable')
                cached = self.get('/' + name, {'If-None-Match': etag})
                self.assertEqual(cached.status, 304, cached)
                self.assertEqual(cached.body, b'', '304 must not send a body')
                stale = self.get('/' + name, {'If-None-Match': '"not-the-etag"'})
                self.assertEqual(stale.status, 200, stale)
                self.assertEqual(stale.body, FILES[name])

    def test_a_mount_serves_its_folder_under_its_url(self):
        self.assertOk(self.get('/extra/hello.txt'), EXTRA_FILES['hello.txt'],
                      'text/plain; charset=utf-8', '/extra/hello.txt')
        self.assertOk(self.get('/extra/'), EXTRA_FILES['index.html'],
                      'text/html; charset=utf-8', '/extra/')
        # The web root's files are not visible under the mount and vice versa.
        self.assertEqual(self.get('/extra/readme.txt').status, 404)
        self.assertEqual(self.get('/hello.txt').status, 404)

    # ---- refusing --------------------------------------------------------

    def test_paths_escaping_the_web_root_are_refused(self):
        for path in REFUSED_PATHS:
            with self.subTest(path=path):
                resp = self.get(path)
                self.assertIn(resp.status, (400, 403, 404), '%s was not refused: %r %r'
                              % (path, resp, resp.body[:200]))
                self.assertNotIn(PASSWD_MARK, resp.body, path)
        self.server.assert_alive()

    def test_more_paths_escaping_the_web_root_are_refused_or_dropped(self):
        for path in MORE_REFUSED_PATHS:
            with self.subTest(path=path):
                try:
                    resp = self.get(path)
                except ConnectionClosedEarly:
                    continue
                self.assertIn(resp.status, (400, 403, 404), '%s was not refused: %r %r'
                              % (path, resp, resp.body[:200]))
                self.assertNotIn(PASSWD_MARK, resp.body, path)
        self.server.assert_alive()

    def test_paths_escaping_the_web_root_are_refused_for_head_too(self):
        for path in ['/../secret.txt', '/link-file', '/link-out/secret.txt', '/.hidden',
                     '/%2e%2e%2fsecret.txt']:
            with self.subTest(path=path):
                resp = self.request('HEAD', path)
                self.assertIn(resp.status, (400, 403, 404), '%s: %r' % (path, resp))
                self.assertNotEqual(resp.header('Content-Length'), str(len(SECRET) + 1),
                                    'HEAD %s reveals the size of the secret' % path)

    def test_raw_requests_with_odd_targets_are_refused(self):
        # Absolute-form and bare relative targets, sent byte for byte.
        port = self.server.port
        for target in [b'../secret.txt', b'secret.txt',
                       b'https://localhost:%d/../secret.txt' % port,
                       b'/sub/./../../secret.txt', b'/\xc0\xae\xc0\xae/secret.txt',
                       b'/%c0%ae%c0%ae/secret.txt']:
            with self.subTest(target=target):
                req = (b'GET ' + target + b' HTTP/1.1\r\nHost: localhost:%d\r\n'
                       b'Connection: close\r\n\r\n' % port)
                resp = raw_request(self.server, req)
                self.assertNotIn(SECRET, resp.body)
                self.assertNotEqual(resp.status, 200, '%r gave 200: %r' % (target, resp.body[:200]))

    def test_the_secret_never_appears_in_the_log_of_refused_requests(self):
        self.get('/link-file')
        self.assertNotIn(SECRET.decode(), self.server.log())


class KeyInsideServedFolderTest(unittest.TestCase):
    """duetd must not start when its private key could be served."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='duet-keyleak-')
        cls.web = os.path.join(cls.tmp, 'web')
        cls.extra = os.path.join(cls.tmp, 'extra')
        os.makedirs(os.path.join(cls.web, 'sub'))
        os.makedirs(cls.extra)
        with open(os.path.join(cls.web, 'index.html'), 'wb') as f:
            f.write(b'<p>x</p>')
        cls.cert, cls.key = make_cert(os.path.join(cls.tmp, 'certs'))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_with_key(self, key_dest, extra=()):
        os.makedirs(os.path.dirname(key_dest), exist_ok=True)
        shutil.copy(self.key, key_dest)
        try:
            return run_duetd(['--address', '127.0.0.1', '--port', '0',
                              '--state-dir', os.path.join(self.tmp, 'state'),
                              '--web-root', self.web, '--cert', self.cert, '--key', key_dest]
                             + list(extra), timeout=5)
        finally:
            os.unlink(key_dest)

    def assertRefusedKey(self, proc, key_path):
        self.assertNotEqual(proc.returncode, 0, 'duetd started with its key in a served folder')
        self.assertNotIn('listening on', proc.stderr)
        self.assertTrue(key_path in proc.stderr or '--key' in proc.stderr,
                        'the error does not name the key: %r' % proc.stderr)

    def test_duetd_refuses_a_key_inside_the_web_root(self):
        key = os.path.join(self.web, 'key.pem')
        self.assertRefusedKey(self.run_with_key(key), key)

    def test_duetd_refuses_a_key_deep_inside_the_web_root(self):
        key = os.path.join(self.web, 'sub', 'deeper', 'key.pem')
        self.assertRefusedKey(self.run_with_key(key), key)

    def test_duetd_refuses_a_key_inside_a_mount(self):
        key = os.path.join(self.extra, 'key.pem')
        proc = self.run_with_key(key, ['--mount', '/extra=' + self.extra])
        self.assertRefusedKey(proc, key)


if __name__ == '__main__':
    unittest.main()
