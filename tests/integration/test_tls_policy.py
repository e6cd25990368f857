"""TLS policy, certificate reload on SIGHUP, the WebSocket Origin check, HSTS
and the plain-HTTP redirect port with ACME challenges."""

import asyncio
import hashlib
import os
import shutil
import signal
import socket
import ssl
import tempfile
import time
import unittest

import websockets

from duet_harness import DuetTestCase, Server, count_in_log, eventually, make_cert, raw_request, run_duetd


def handshake(server, version=None, ciphers=None, max_version=None):
    """A TLS handshake with chosen limits; returns (protocol, cipher, cert DER)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if version:
        ctx.minimum_version = version
    if max_version:
        ctx.maximum_version = max_version
    # The client offers whatever it is told, so a refusal is the server's.
    ctx.set_ciphers((ciphers or 'ALL') + ':@SECLEVEL=0')
    with socket.create_connection(('127.0.0.1', server.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname='localhost') as tls:
            return tls.version(), tls.cipher()[0], tls.getpeercert(binary_form=True)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class TlsPolicyTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=['--hsts', '31536000'])
        cls.server.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    def test_tls_1_3_is_preferred(self):
        version, _, _ = handshake(self.server)
        self.assertEqual(version, 'TLSv1.3')

    def test_tls_1_2_works_with_a_forward_secret_aead_suite(self):
        version, cipher, _ = handshake(self.server, max_version=ssl.TLSVersion.TLSv1_2)
        self.assertEqual(version, 'TLSv1.2')
        self.assertRegex(cipher, r'^ECDHE-(ECDSA|RSA)-(AES\d+-GCM|CHACHA20-POLY1305)')

    def test_tls_1_1_and_1_0_are_refused(self):
        for v in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            with self.subTest(version=v):
                ctx_version = (v, v)
                with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                    handshake(self.server, version=ctx_version[0], max_version=ctx_version[1])

    def test_cbc_and_non_forward_secret_suites_are_refused_on_tls_1_2(self):
        for suite in ('AES128-SHA', 'AES256-GCM-SHA384', 'ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA384'):
            with self.subTest(suite=suite):
                with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                    handshake(self.server, max_version=ssl.TLSVersion.TLSv1_2, ciphers=suite)

    def test_hsts_is_sent_when_asked(self):
        resp = raw_request(self.server, b'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')
        self.assertEqual(resp.header('strict-transport-security'), 'max-age=31536000')


class TlsMinimumTest(unittest.TestCase):

    def test_tls_min_1_3_refuses_tls_1_2(self):
        with Server(extra_args=['--tls-min', '1.3']) as srv:
            self.assertEqual(handshake(srv)[0], 'TLSv1.3')
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                handshake(srv, max_version=ssl.TLSVersion.TLSv1_2)


class CertificateReloadTest(DuetTestCase):

    async def test_sighup_loads_a_new_pair_for_new_handshakes_and_keeps_open_connections(self):
        tmp = tempfile.mkdtemp(prefix='duet-reload-')
        self.addCleanup(shutil.rmtree, tmp, True)
        cert_a, key_a = make_cert(tmp, name='a')
        cert_b, key_b = make_cert(tmp, name='b')
        live_cert, live_key = os.path.join(tmp, 'live-cert.pem'), os.path.join(tmp, 'live-key.pem')
        shutil.copy(cert_a, live_cert)
        shutil.copy(key_a, live_key)
        srv = Server(extra_args=['--cert', live_cert, '--key', live_key], ca_file=cert_a)
        srv.start()
        self.server = srv
        self.addCleanup(srv.__exit__, None, None, None)
        der_a = handshake(srv)[2]
        a, b = await self.pair()

        shutil.copy(cert_b, live_cert)
        shutil.copy(key_b, live_key)
        reloads = count_in_log(srv, 'SIGHUP: new TLS handshakes use')
        os.kill(srv.pid, signal.SIGHUP)
        await eventually(lambda: count_in_log(srv, 'SIGHUP: new TLS handshakes use') > reloads,
                         what='the certificate reload')
        der_now = handshake(srv)[2]
        self.assertNotEqual(hashlib.sha256(der_now).hexdigest(), hashlib.sha256(der_a).hexdigest())
        with open(cert_b, 'rb') as f:
            self.assertEqual(ssl.DER_cert_to_PEM_cert(der_now).strip(), f.read().decode().strip())
        # The call set up under the old certificate goes on.
        msg = {'ice': {'candidate': 'x'}, 'remote': a.name}
        await b.send_json(msg)
        self.assertEqual(await a.recv_json(), msg)

        # A bad pair (B's certificate with A's key) is refused; B stays in use.
        shutil.copy(key_a, live_key)
        os.kill(srv.pid, signal.SIGHUP)
        await eventually(lambda: 'still using the old pair' in srv.log(), what='the refused reload')
        self.assertEqual(handshake(srv)[2], der_now)
        self.assertIn('still using the old pair', srv.log())


class OriginTest(DuetTestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=['--allow-origin', 'https://app.example.org'])
        cls.server.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    async def test_the_server_s_own_origin_is_accepted(self):
        c = await self.connect('own', origin='https://127.0.0.1:%d' % self.server.port)
        await c.send_json({'ping': 1})
        self.assertEqual(await c.recv_json(), {'pong': 1})

    async def test_an_allowed_origin_is_accepted(self):
        c = await self.connect('allowed', origin='https://app.example.org')
        await c.send_json({'ping': 1})
        self.assertEqual(await c.recv_json(), {'pong': 1})

    async def test_a_foreign_origin_is_refused(self):
        for origin in ('https://evil.example', 'https://app.example.org.evil.example', 'null',
                       'http://127.0.0.1:%d' % self.server.port):
            with self.subTest(origin=origin):
                with self.assertRaises((websockets.InvalidStatusCode, websockets.InvalidHandshake,
                                        ConnectionError, asyncio.TimeoutError)):
                    await self.connect('evil', origin=origin)
        await self.assert_server_still_pairs()

    async def test_a_client_without_origin_is_not_a_browser_and_is_accepted(self):
        c = await self.connect('cli')
        await c.send_json({'ping': 1})
        self.assertEqual(await c.recv_json(), {'pong': 1})


class AnyOriginTest(DuetTestCase):

    async def test_allow_any_origin_accepts_a_foreign_origin(self):
        with Server(extra_args=['--allow-any-origin']) as srv:
            self.server = srv
            c = await self.connect('any', origin='https://elsewhere.example')
            await c.send_json({'ping': 1})
            self.assertEqual(await c.recv_json(), {'pong': 1})
            await c.close()


class RedirectPortTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.acme = tempfile.mkdtemp(prefix='duet-acme-')
        os.makedirs(os.path.join(cls.acme, '.well-known', 'acme-challenge'))
        with open(os.path.join(cls.acme, '.well-known', 'acme-challenge', 'tok-EN_123'), 'w') as f:
            f.write('tok-EN_123.thumbprint')
        cls.redirect_port = free_port()
        cls.server = Server(extra_args=['--http-redirect-port', str(cls.redirect_port),
                                        '--acme-webroot', cls.acme])
        cls.server.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)
        shutil.rmtree(cls.acme, True)

    def plain(self, request):
        with socket.create_connection(('127.0.0.1', self.redirect_port), timeout=5) as s:
            s.sendall(request)
            data = b''
            while b'\r\n\r\n' not in data or len(data) < 12:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            time.sleep(0.05)
            s.settimeout(0.3)
            try:
                data += s.recv(4096)
            except OSError:
                pass
            return data.decode(errors='replace')

    def test_plain_http_is_redirected_to_https_on_the_main_port(self):
        reply = self.plain(b'GET /call?me=a HTTP/1.1\r\nHost: example.org:%d\r\n\r\n' % self.redirect_port)
        self.assertTrue(reply.startswith('HTTP/1.1 301'), reply)
        self.assertIn('location: https://example.org:%d/call' % self.server.port, reply.lower())

    def test_an_acme_challenge_is_served_from_the_webroot(self):
        reply = self.plain(b'GET /.well-known/acme-challenge/tok-EN_123 HTTP/1.1\r\nHost: example.org\r\n\r\n')
        self.assertTrue(reply.startswith('HTTP/1.1 200'), reply)
        self.assertTrue(reply.endswith('tok-EN_123.thumbprint'), reply)

    def test_challenge_paths_cannot_leave_the_challenge_folder(self):
        for path in (b'/.well-known/acme-challenge/../../etc/passwd', b'/.well-known/acme-challenge/a%2fb',
                     b'/.well-known/acme-challenge/missing', b'/.well-known/acme-challenge/'):
            with self.subTest(path=path):
                reply = self.plain(b'GET ' + path + b' HTTP/1.1\r\nHost: example.org\r\n\r\n')
                self.assertFalse(reply.startswith('HTTP/1.1 200'), reply)

    def test_no_websocket_on_the_redirect_port(self):
        reply = self.plain(b'GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
                           b'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
        self.assertFalse(reply.startswith('HTTP/1.1 101'), reply)

    def test_acme_webroot_without_a_redirect_port_is_a_usage_error(self):
        proc = run_duetd(['--acme-webroot', self.acme, '--port', '0'], timeout=30)
        self.assertEqual(proc.returncode, 2, proc.stderr)


if __name__ == '__main__':
    unittest.main()
