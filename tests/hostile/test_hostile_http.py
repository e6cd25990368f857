"""Hostile input at the HTTP and TLS layers: slowloris, request smuggling,
path traversal, garbage before the TLS handshake, broken WebSocket upgrades.
Each case checks the answer (a 4xx or a close, never a 200 for something that
should not be served), that the server still pairs a fresh couple, and (at
tearDownClass) that duetd exits 0 on SIGTERM (no sanitizer report).

Run: DUETD=build/core/duetd /usr/bin/python3 tests/hostile/test_hostile_http.py
"""

import asyncio
import os
import shutil
import socket
import ssl
import struct
import tempfile
import time
import unittest

from hostile_util import SLOW, SharedServerCase, read_all, statuses, tls_socket

from duet_harness import raw_request

SECRET = b'duet-hostile-secret-7f3a'
HTTP_TIMEOUT = 2
SLACK = 3


def make_tree():
    """tmp/web (served) with index.html and .env; tmp/secret.txt next to it."""
    top = tempfile.mkdtemp(prefix='duet-hostile-web-')
    web = os.path.join(top, 'web')
    os.makedirs(os.path.join(web, 'sub'))
    with open(os.path.join(web, 'index.html'), 'w') as f:
        f.write('<p>index</p>\n')
    with open(os.path.join(web, 'sub', 'page.html'), 'w') as f:
        f.write('<p>page</p>\n')
    for name in ('.env', 'secret.txt'):
        with open(os.path.join(web if name == '.env' else top, name), 'wb') as f:
            f.write(SECRET + b'\n')
    os.symlink(os.path.join(top, 'secret.txt'), os.path.join(web, 'link-out'))
    return top, web


class HttpCase(SharedServerCase):
    server_args = ['--http-timeout', str(HTTP_TIMEOUT)]

    @classmethod
    def server_kwargs(cls):
        cls.tree, web = make_tree()
        return {'web_root': web}

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.tree, ignore_errors=True)

    def exchange(self, data, timeout=3.0, tls=True):
        """Send bytes on a fresh connection; (everything received, closed)."""
        sock = tls_socket(self.server) if tls else socket.create_connection(
            (self.server.host, self.server.port), timeout=5)
        try:
            sock.sendall(data)
            return read_all(sock, timeout * SLOW)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return b'', True
        finally:
            sock.close()


class SmugglingTest(HttpCase):
    """The outer request always targets something that is not a 200; the
    smuggled one is GET /healthz. A 200 anywhere means it was served."""

    SMUGGLED = b'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n'

    def cases(self):
        s = self.SMUGGLED
        n = str(len(s)).encode()
        return [
            ('CL and TE', b'POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n'
             b'Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n' + s),
            ('TE and CL', b'POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n'
             b'Content-Length: ' + n + b'\r\n\r\n0\r\n\r\n' + s),
            ('duplicate CL', b'POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n'
             b'Content-Length: ' + n + b'\r\n\r\n' + s),
            ('CL list', b'POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 0, ' + n + b'\r\n\r\n' + s),
            ('POST with CL body', b'POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: ' + n + b'\r\n\r\n' + s),
            ('GET with CL body', b'GET /nope HTTP/1.1\r\nHost: x\r\nContent-Length: ' + n + b'\r\n\r\n' + s),
            ('obs-fold TE', b'POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n'
             b'Content-Length: ' + n + b'\r\n\r\n' + s),
            ('TE space before colon', b'POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n'
             b'Content-Length: ' + n + b'\r\n\r\n0\r\n\r\n' + s),
            ('TE xchunked', b'POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n'
             b'Content-Length: ' + n + b'\r\n\r\n' + s),
            ('TE chunked, identity', b'POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n'
             b'\r\n0\r\n\r\n' + s),
            ('bare LF', b'GET /nope HTTP/1.1\nHost: x\nContent-Length: ' + n + b'\n\n' + s),
            ('bare LF in a header', b'GET /nope HTTP/1.1\r\nHost: x\r\nX-A: b\nContent-Length: ' + n
             + b'\r\n\r\n' + s),
            ('huge chunk size', b'POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n'
             b'FFFFFFFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n' + s),
            ('negative CL', b'POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n' + s),
            ('huge CL', b'POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n' + s),
            ('NUL in a header', b'GET /nope HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\nContent-Length: ' + n
             + b'\r\n\r\n' + s),
            ('HTTP/1.0 with TE', b'POST /nope HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' + s),
            ('bad version', b'GET /nope HTTP/9.9\r\nHost: x\r\n\r\n' + s),
        ]

    async def test_no_smuggled_request_is_ever_served(self):
        bad = []
        cases = self.cases()
        results = await asyncio.gather(*(asyncio.to_thread(self.exchange, d, 2.0) for _, d in cases))
        for (what, data), (got, closed) in zip(cases, results):
            codes = statuses(got)
            if 200 in codes or b'"status":"ok"' in got:
                # RFC 9112 6.1/6.3, RFC 9110 5.5: reject such a request or close
                # the connection after answering it; never read on.
                bad.append('%s: the smuggled request was served (statuses %s)' % (what, codes))
            elif any(c >= 500 for c in codes):
                bad.append('%s: %r' % (what, got[:200]))
            elif not closed and not any(400 <= c < 500 for c in codes):
                bad.append('%s: neither a 4xx nor a close within 2 s (got %r)' % (what, got[:200]))
            self.server.assert_alive()
        self.assertEqual(bad, [], '\n'.join(bad))
        await self.assert_server_still_pairs()


class PathTraversalTest(HttpCase):

    PATHS = [
        '/../secret.txt', '/../../secret.txt', '/%2e%2e/secret.txt', '/%2E%2E/secret.txt',
        '/%2e%2e%2fsecret.txt', '/..%2fsecret.txt', '/..%2Fsecret.txt', '/%252e%252e/secret.txt',
        '/%252e%252e%252fsecret.txt', '/%c0%ae%c0%ae/secret.txt', '/%c0%ae%c0%ae%c0%afsecret.txt',
        '/%e0%80%ae%e0%80%ae/secret.txt', '/%ef%bc%8e%ef%bc%8e/secret.txt', '/..\\secret.txt',
        '/..%5csecret.txt', '/..%255csecret.txt', '/sub/../../secret.txt', '/sub/%2e%2e/%2e%2e/secret.txt',
        '/./../secret.txt', '//../secret.txt', '/..;/secret.txt', '/...//secret.txt', '/.env', '/%2eenv',
        '/sub/../.env', '/.%65nv', '/link-out', '/index.html%00', '/index.html%00.txt', '/%00../secret.txt',
        '/secret.txt', '../secret.txt', 'secret.txt', '*', '/index.html/..%2f..%2fsecret.txt',
        'http://localhost/../secret.txt', '/?/../../secret.txt', '/#/../secret.txt', '/%', '/%zz',
        '/%2', '/' + '../' * 200 + 'secret.txt', '/' + 'a/' * 3000,
    ]

    async def test_no_traversal_variant_reaches_a_file_outside_or_a_dotfile(self):
        bad = []
        reqs = [('GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' % p).encode('latin-1')
                for p in self.PATHS]
        results = await asyncio.gather(*(asyncio.to_thread(self.exchange, r, 2.0) for r in reqs))
        for path, (got, closed) in zip(self.PATHS, results):
            codes = statuses(got)
            if SECRET in got:
                bad.append('%s: served the secret: %r' % (path, got[:200]))
            elif any(c >= 500 for c in codes):
                bad.append('%s: %r' % (path, got[:200]))
            elif not codes and not closed:
                bad.append('%s: no answer and no close' % path)
            elif 200 in codes and b'<p>' not in got:
                bad.append('%s: a 200 with unexpected content %r' % (path, got[:200]))
        self.assertEqual(bad, [], '\n'.join(bad))
        r = raw_request(self.server, ('GET', '/sub/page.html'))
        self.assertEqual(r.status, 200)
        await self.assert_server_still_pairs()


class TlsGarbageTest(HttpCase):

    @staticmethod
    def sslv2_hello():
        ciphers = bytes.fromhex('0700c0' '030080' '010080' '060040')
        challenge = os.urandom(16)
        body = b'\x01\x00\x02' + struct.pack('!HHH', len(ciphers), 0, len(challenge)) + ciphers + challenge
        return struct.pack('!H', 0x8000 | len(body)) + body

    @staticmethod
    def sslv3_hello():
        hello = b'\x03\x00' + os.urandom(32) + b'\x00' + b'\x00\x04\x00\x0a\x00\x2f' + b'\x01\x00'
        hs = b'\x01' + struct.pack('!I', len(hello))[1:] + hello
        return b'\x16\x03\x00' + struct.pack('!H', len(hs)) + hs

    async def test_garbage_before_the_handshake_is_closed_and_never_answered_in_plaintext(self):
        cases = [
            ('random bytes', os.urandom(4096)),
            ('100 kB of random bytes', os.urandom(100000)),
            ('an SSLv2 hello', self.sslv2_hello()),
            ('an SSLv3 hello', self.sslv3_hello()),
            ('plain HTTP on the TLS port', b'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'),
            ('plain WebSocket upgrade on the TLS port',
             b'GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
             b'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'),
            ('a TLS record of 65535 bytes announced', b'\x16\x03\x01\xff\xff' + os.urandom(200)),
            ('a handshake record with a huge hello', b'\x16\x03\x01\x00\x10\x01\xff\xff\xff' + os.urandom(11)),
            ('an alert first', b'\x15\x03\x03\x00\x02\x02\x28'),
            ('application data first', b'\x17\x03\x03\x00\x10' + os.urandom(16)),
            ('NUL bytes', b'\x00' * 1000),
        ]
        bad = []
        for what, data in cases:
            t0 = time.monotonic()
            got, closed = await asyncio.to_thread(self.exchange, data, HTTP_TIMEOUT + SLACK, False)
            if b'HTTP/1.1 2' in got or b'HTTP/1.1 101' in got or b'<p>index' in got:
                bad.append('%s: answered in plaintext: %r' % (what, got[:200]))
            elif not closed:
                bad.append('%s: not closed within %.1f s' % (what, time.monotonic() - t0))
            self.server.assert_alive()
        self.assertEqual(bad, [], '\n'.join(bad))
        await self.assert_server_still_pairs()


class BadUpgradeTest(HttpCase):

    def upgrade(self, key='dGhlIHNhbXBsZSBub25jZQ==', version='13', extra=(), method='GET',
                proto='HTTP/1.1', connection='Upgrade', upgrade='websocket'):
        lines = ['%s / %s' % (method, proto), 'Host: localhost']
        if upgrade is not None:
            lines.append('Upgrade: %s' % upgrade)
        if connection is not None:
            lines.append('Connection: %s' % connection)
        if key is not None:
            lines.append('Sec-WebSocket-Key: %s' % key)
        if version is not None:
            lines.append('Sec-WebSocket-Version: %s' % version)
        lines += list(extra)
        return ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1')

    async def test_broken_upgrades_never_get_101(self):
        cases = [
            ('no key', self.upgrade(key=None)),
            ('empty key', self.upgrade(key='')),
            ('no version', self.upgrade(version=None)),
            ('version 12', self.upgrade(version='12')),
            ('version 99', self.upgrade(version='99')),
            ('version 8', self.upgrade(version='8')),
            ('version text', self.upgrade(version='thirteen')),
            # Not here: an HTTP/1.0 upgrade. lws 4.1 does not tell its user the
            # request's HTTP version, and it answers 101; the handshake is
            # otherwise valid, so nothing is exposed (known, noted in issue 6).
            ('POST upgrade', self.upgrade(method='POST')),
            ('upgrade to h2c', self.upgrade(upgrade='h2c')),
        ]
        bad = []
        for what, data in cases:
            got, closed = await asyncio.to_thread(self.exchange, data, 2.0)
            codes = statuses(got)
            if 101 in codes:
                bad.append('%s: switched protocols: %r' % (what, got[:200]))
            elif not closed and not any(400 <= c < 500 for c in codes):
                bad.append('%s: neither a 4xx nor a close (got %r)' % (what, got[:200]))
            self.server.assert_alive()
        self.assertEqual(bad, [], '\n'.join(bad))
        await self.assert_server_still_pairs()

    async def test_malformed_keys_are_refused_or_answered_correctly(self):
        # RFC 6455 4.2.1: the key is base64 of 16 bytes. A lenient server may
        # accept others, but must then still compute Sec-WebSocket-Accept.
        import base64
        import hashlib
        for key in ['not base64 !!', 'AAAA', base64.b64encode(os.urandom(15)).decode(),
                    base64.b64encode(os.urandom(64)).decode(), 'x' * 5000]:
            got, closed = await asyncio.to_thread(self.exchange, self.upgrade(key=key), 1.0)
            codes = statuses(got)
            if 101 in codes:
                accept = base64.b64encode(hashlib.sha1(
                    (key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').encode()).digest())
                self.assertIn(b'Sec-WebSocket-Accept: ' + accept,
                              got.replace(b'sec-websocket-accept', b'Sec-WebSocket-Accept'),
                              'key %r: 101 without the right accept' % key[:40])
            else:
                self.assertTrue(closed or any(400 <= c < 500 for c in codes), 'key %r: %r' % (key[:40], got[:200]))
        await self.assert_server_still_pairs()


class SlowlorisTest(HttpCase):

    @staticmethod
    def drip(sock, data, every, seconds):
        """Send data one byte every `every` seconds until the peer closes;
        returns (seconds until closed or None, what it sent back)."""
        t0 = time.monotonic()
        got = b''
        sock.settimeout(every)
        i = 0
        while time.monotonic() - t0 < seconds:
            try:
                sock.sendall(data[i % len(data):i % len(data) + 1])
            except (OSError, ssl.SSLError):
                return time.monotonic() - t0, got
            i += 1
            try:
                chunk = sock.recv(4096)
                if not chunk:
                    return time.monotonic() - t0, got
                got += chunk
            except (socket.timeout, TimeoutError, ssl.SSLWantReadError):
                pass
            except (OSError, ssl.SSLError):
                return time.monotonic() - t0, got
        return None, got

    def slow_headers(self):
        s = tls_socket(self.server)
        s.sendall(b'GET / HTTP/1.1\r\nHost: localhost\r\n')
        return self.drip(s, b'X-Slow: ' + b'a' * 50, 0.3, HTTP_TIMEOUT + SLACK + 3)

    def slow_upgrade(self):
        s = tls_socket(self.server)
        s.sendall(b'GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n')
        return self.drip(s, b'Connection: Upgrade\r\n', 0.3, HTTP_TIMEOUT + SLACK + 3)

    def slow_handshake(self):
        s = socket.create_connection((self.server.host, self.server.port), timeout=5)
        hello = b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' + os.urandom(500)
        return self.drip(s, hello, 0.3, HTTP_TIMEOUT + SLACK + 3)

    def slow_body(self):
        s = tls_socket(self.server)
        s.sendall(b'POST /nope HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n')
        return self.drip(s, b'b', 0.3, HTTP_TIMEOUT + SLACK + 3)

    async def test_slow_clients_are_cut_off_while_others_are_served(self):
        kinds = [self.slow_headers, self.slow_upgrade, self.slow_handshake, self.slow_body]
        tasks = [asyncio.create_task(asyncio.to_thread(kinds[i % len(kinds)])) for i in range(40)]
        await asyncio.sleep(0.5)
        t0 = time.monotonic()
        await self.assert_server_still_pairs()
        self.assertLess(time.monotonic() - t0, 3 * SLOW, 'slow clients slowed down the others')
        results = await asyncio.gather(*tasks)
        bad = []
        for i, (elapsed, got) in enumerate(results):
            what = kinds[i % len(kinds)].__name__
            if elapsed is None:
                bad.append('%s: still open after %d s (--http-timeout %d)'
                           % (what, HTTP_TIMEOUT + SLACK + 3, HTTP_TIMEOUT))
            elif elapsed > HTTP_TIMEOUT + SLACK * SLOW and not statuses(got):
                bad.append('%s: closed only after %.1f s' % (what, elapsed))
            if b'HTTP/1.1 2' in got or b' 101 ' in got:
                bad.append('%s: got %r' % (what, got[:100]))
        self.assertEqual(bad, [], '\n'.join(sorted(set(bad))))
        await self.assert_server_still_pairs()


if __name__ == '__main__':
    unittest.main()
