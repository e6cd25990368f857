"""TLS certificates, plain mode, IPv6, the command line, config files, and a
clean shutdown that tells clients why they are being closed.

Run: DUETD=build/core/duetd /usr/bin/python3 tests/integration/test_tls_and_cli.py
"""

import asyncio
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import tempfile
import unittest

from duet_harness import (DuetTestCase, Server, have_ipv6_loopback, make_cert,
                          raw_request, run_duetd, ssl_context, unique_id)

ALL_OPTIONS = ['--address', '--port', '--cert', '--key', '--state-dir', '--no-tls',
               '--web-root', '--mount', '--max-message-bytes', '--plugin', '--plugin-dir',
               '--no-default-plugins', '--plugin-opt', '--list-plugins', '--config',
               '--version', '--help', '--log-level']

INDEX = b'<!doctype html><p>tls test index</p>\n'


def pem_to_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def tls_handshake(server, server_hostname='localhost', ca_file=None, alpn=('http/1.1',),
                  host=None):
    """Connect, handshake, and return (der_cert, parsed_cert, alpn_protocol)."""
    ctx = ssl_context(ca_file or server.ca_file, alpn=alpn)
    host = host or server.host
    with socket.create_connection((host, server.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_hostname) as s:
            return s.getpeercert(binary_form=True), s.getpeercert(), s.selected_alpn_protocol()


def make_web_root(tmp):
    web = os.path.join(tmp, 'web')
    os.makedirs(web, exist_ok=True)
    with open(os.path.join(web, 'index.html'), 'wb') as f:
        f.write(INDEX)
    return web


class TempDirCase(DuetTestCase):

    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.tmp = tempfile.mkdtemp(prefix='duet-tls-')
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def start(self, **kwargs):
        kwargs.setdefault('web_root', make_web_root(self.tmp))
        srv = Server(**kwargs)
        srv.__enter__()
        self.addCleanup(srv.__exit__, None, None, None)
        return srv

    async def assert_pairs(self, srv, host=None):
        x, y = unique_id('x'), unique_id('y')
        a = await self.connect(x, server=srv, host=host)
        await a.open(x, y)
        b = await self.connect(y, server=srv, host=host)
        await b.open(y, x)
        self.assertEqual(await a.recv_json(), {'start': 'answer'})
        self.assertEqual(await b.recv_json(), {'start': 'offer'})
        m = {'sdp': {'type': 'offer', 'sdp': 'v=0'}, 'remote': x}
        await b.send_json(m)
        self.assertEqual(await a.recv_json(), m)
        await a.close()
        await b.close()


class CertificateTest(TempDirCase):

    async def test_the_first_run_makes_a_self_signed_certificate_and_logs_its_path(self):
        srv = self.start()
        self.assertEqual(srv.scheme, 'https')
        self.assertTrue(os.path.isfile(srv.ca_file), 'no %s after the first run' % srv.ca_file)
        log = srv.log()
        self.assertRegex(log, r'(?i)self[- ]signed', 'the log does not say the cert is self-signed')
        self.assertIn(srv.ca_file, log, 'the log does not give the certificate path')
        der, cert, alpn = tls_handshake(srv)
        self.assertEqual(der, pem_to_der(srv.ca_file), 'served cert differs from dev-cert.pem')
        self.assertIn((('commonName', 'localhost'),), cert['subject'])
        san = cert.get('subjectAltName', ())
        self.assertIn(('DNS', 'localhost'), san)
        self.assertIn(('IP Address', '127.0.0.1'), san)
        # The certificate is valid for the IP address too, not only the name.
        tls_handshake(srv, server_hostname='127.0.0.1')
        await self.assert_pairs(srv)

    async def test_the_private_key_of_the_dev_certificate_is_not_world_readable(self):
        srv = self.start()
        keys = []
        for name in os.listdir(srv.state_dir):
            path = os.path.join(srv.state_dir, name)
            if os.path.isfile(path):
                with open(path, 'rb') as f:
                    if b'PRIVATE KEY' in f.read():
                        keys.append(path)
        self.assertTrue(keys, 'no private key file in the state dir: %r'
                        % os.listdir(srv.state_dir))
        for k in keys:
            mode = os.stat(k).st_mode & 0o777
            self.assertEqual(mode & 0o077, 0, '%s has mode %o' % (k, mode))

    async def test_a_second_run_with_the_same_state_dir_reuses_the_certificate(self):
        state = os.path.join(self.tmp, 'state')
        first = self.start(state_dir=state)
        with open(first.ca_file, 'rb') as f:
            pem = f.read()
        self.assertEqual(first.stop(), 0)
        second = self.start(state_dir=state)
        with open(second.ca_file, 'rb') as f:
            self.assertEqual(f.read(), pem, 'dev-cert.pem was rewritten on the second run')
        der, _, _ = tls_handshake(second)
        self.assertEqual(der, ssl.PEM_cert_to_DER_cert(pem.decode()))

    async def test_a_given_certificate_and_key_are_served(self):
        cert, key = make_cert(os.path.join(self.tmp, 'certs'))
        srv = self.start(extra_args=['--cert', cert, '--key', key], ca_file=cert)
        der, parsed, _ = tls_handshake(srv, ca_file=cert)
        self.assertEqual(der, pem_to_der(cert))
        await self.assert_pairs(srv)
        # A client that trusts only the dev certificate would refuse it.
        other_cert, _ = make_cert(os.path.join(self.tmp, 'other'), name='other')
        with self.assertRaises(ssl.SSLError):
            tls_handshake(srv, ca_file=other_cert)

    async def test_only_http_1_1_is_offered_by_alpn(self):
        srv = self.start()
        _, _, alpn = tls_handshake(srv, alpn=('h2', 'http/1.1'))
        self.assertEqual(alpn, 'http/1.1')

    async def test_a_plain_http_request_on_the_tls_port_does_not_hurt_the_server(self):
        srv = self.start()
        with socket.create_connection((srv.host, srv.port), timeout=5) as s:
            s.sendall(b'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')
            s.settimeout(3)
            try:
                data = s.recv(4096)
            except (socket.timeout, ConnectionResetError):
                data = b''
        self.assertNotIn(INDEX, data)
        srv.assert_alive()
        await self.assert_pairs(srv)

    async def test_a_missing_certificate_file_stops_duetd_with_a_message_naming_it(self):
        missing = os.path.join(self.tmp, 'no-such-cert.pem')
        proc = run_duetd(['--address', '127.0.0.1', '--port', '0',
                          '--state-dir', os.path.join(self.tmp, 'state'),
                          '--web-root', make_web_root(self.tmp),
                          '--cert', missing, '--key', missing], timeout=5)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn(missing, proc.stderr)


class PlainAndIpv6Test(TempDirCase):

    async def test_no_tls_serves_plain_http_and_ws(self):
        srv = self.start(extra_args=['--no-tls'])
        self.assertEqual(srv.scheme, 'http')
        self.assertTrue(srv.url.startswith('http://'))
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
        try:
            conn.request('GET', '/')
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.read(), INDEX)
        finally:
            conn.close()
        await self.assert_pairs(srv)

    @unittest.skipUnless(have_ipv6_loopback(), 'this machine has no IPv6 loopback')
    async def test_without_an_address_duetd_listens_on_ipv6_and_ipv4(self):
        srv = self.start(address=None)
        resp = raw_request(srv, ('GET', '/'), host='::1')
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body, INDEX)
        await self.assert_pairs(srv, host='::1')
        resp = raw_request(srv, ('GET', '/'), host='127.0.0.1')
        self.assertEqual(resp.status, 200)
        # One side over IPv6, the other over IPv4: still one server, one pair space.
        x, y = unique_id('v6'), unique_id('v4')
        a = await self.connect(x, server=srv, host='::1')
        await a.open(x, y)
        b = await self.connect(y, server=srv, host='127.0.0.1')
        await b.open(y, x)
        self.assertEqual(await a.recv_json(), {'start': 'answer'})
        self.assertEqual(await b.recv_json(), {'start': 'offer'})

    @unittest.skipUnless(have_ipv6_loopback(), 'this machine has no IPv6 loopback')
    async def test_an_ipv4_address_listens_on_that_address_only(self):
        srv = self.start(address='127.0.0.1')
        self.assertEqual(raw_request(srv, ('GET', '/')).status, 200)
        # Asked for 127.0.0.1 only: not reachable over IPv6 (nor any other address).
        with self.assertRaises(OSError, msg='--address 127.0.0.1 also listens on ::1'):
            socket.create_connection(('::1', srv.port), timeout=2).close()

    @unittest.skipUnless(have_ipv6_loopback(), 'this machine has no IPv6 loopback')
    async def test_an_ipv6_address_can_be_given(self):
        srv = self.start(address='::1')
        resp = raw_request(srv, ('GET', '/'), host='::1')
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body, INDEX)
        await self.assert_pairs(srv, host='::1')
        with self.assertRaises(OSError, msg='--address ::1 also listens on 127.0.0.1'):
            socket.create_connection(('127.0.0.1', srv.port), timeout=2).close()


class CommandLineTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='duet-cli-')
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def base(self):
        return ['--state-dir', os.path.join(self.tmp, 'state'),
                '--web-root', make_web_root(self.tmp)]

    def test_help_exits_0_and_mentions_every_option(self):
        proc = run_duetd(['--help'])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        text = proc.stdout + proc.stderr
        for opt in ALL_OPTIONS:
            self.assertRegex(text, r'(?<![\w-])' + re.escape(opt) + r'(?![\w-])',
                             '--help does not mention %s' % opt)

    def test_version_prints_a_version(self):
        proc = run_duetd(['--version'])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertRegex(proc.stdout + proc.stderr, r'\b\d+\.\d+(\.\d+)?\b')

    def test_a_non_numeric_port_exits_2_with_a_message(self):
        proc = run_duetd(['--port', 'abc'] + self.base())
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertRegex(proc.stderr, r'port|abc')

    def test_an_unknown_option_exits_2_with_a_message(self):
        proc = run_duetd(['--bogus'] + self.base())
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn('bogus', proc.stderr)

    def test_bad_option_values_exit_2(self):
        for args in (['--port', '70000'], ['--port', '-1'], ['--log-level', 'loud'],
                     ['--max-message-bytes', 'lots'], ['--port']):
            with self.subTest(args=args):
                proc = run_duetd(['--address', '127.0.0.1'] + self.base() + args, timeout=30)
                self.assertEqual(proc.returncode, 2, 'args %r: %s' % (args, proc.stderr))
                self.assertTrue(proc.stderr.strip(), 'no message on stderr for %r' % (args,))
                self.assertNotIn('listening on', proc.stderr)

    def test_a_missing_config_file_stops_duetd_with_a_message_naming_it(self):
        missing = os.path.join(self.tmp, 'nope.conf')
        proc = run_duetd(['--config', missing] + self.base(), timeout=30)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn('nope.conf', proc.stderr)

    def test_an_unknown_key_in_the_config_file_exits_2(self):
        conf = os.path.join(self.tmp, 'bad.conf')
        with open(conf, 'w') as f:
            f.write('port = 0\naddress = "127.0.0.1"\nbogus-key = 1\n')
        proc = run_duetd(['--config', conf] + self.base(), timeout=30)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn('bogus-key', proc.stderr)


class ConfigFileTest(TempDirCase):

    async def test_a_config_file_sets_port_and_address(self):
        conf = os.path.join(self.tmp, 'duet.conf')
        with open(conf, 'w') as f:
            f.write('# duet test config\nport = 0\naddress = "127.0.0.1"\n')
        srv = self.start(address=None, port=None, extra_args=['--config', conf])
        self.assertIsNotNone(srv.port)
        self.assertNotEqual(srv.port, 0, 'the log must show the real port')
        resp = raw_request(srv, ('GET', '/'), host='127.0.0.1')
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body, INDEX)
        await self.assert_pairs(srv)
        if have_ipv6_loopback():
            # Bound to 127.0.0.1 only, as the config said.
            with self.assertRaises(OSError, msg='reachable on ::1 although the config says '
                                   'address = "127.0.0.1"'):
                socket.create_connection(('::1', srv.port), timeout=2).close()

    async def test_a_config_file_sets_the_message_limit(self):
        conf = os.path.join(self.tmp, 'duet.conf')
        with open(conf, 'w') as f:
            f.write('port = 0\naddress = "127.0.0.1"\nmax-message-bytes = 300\n')
        srv = self.start(address=None, port=None, extra_args=['--config', conf])
        c = await self.connect('limit', server=srv)
        await c.send_text('{"ping":1}' + " " * 290)
        self.assertEqual(await c.recv_json(), {'pong': 1})
        await c.send_text('{"ping":1}' + " " * 291)
        self.assertError(await c.recv_json(), 'too-large')


class ShutdownTest(TempDirCase):

    async def test_sigterm_sends_close_to_paired_clients_then_1001_and_exits_0(self):
        srv = self.start()
        x, y = unique_id('x'), unique_id('y')
        a = await self.connect(x, server=srv)
        await a.open(x, y)
        b = await self.connect(y, server=srv)
        await b.open(y, x)
        self.assertEqual(await a.recv_json(), {'start': 'answer'})
        self.assertEqual(await b.recv_json(), {'start': 'offer'})
        waiting = await self.connect('waiting', server=srv)
        await waiting.open(unique_id('w'), unique_id('nobody'))
        idle = await self.connect('idle', server=srv)
        srv.proc.send_signal(signal.SIGTERM)
        for c in (a, b):
            self.assertEqual(await c.recv_json(), {'close': 1}, c.name)
            code, rest = await c.expect_close(1001)
            self.assertEqual(rest, [], '%s: messages after close: %r' % (c.name, rest))
        for c in (waiting, idle):
            await c.expect_close(1001)
        rc = await asyncio.get_running_loop().run_in_executor(None, srv.wait)
        self.assertEqual(rc, 0, srv.log())

    async def test_a_second_server_can_start_on_the_same_port_after_shutdown(self):
        state = os.path.join(self.tmp, 'state')
        first = self.start(state_dir=state)
        # Leave a live connection so the listener has to be torn down properly.
        c = await self.connect('c', server=first)
        await c.open(unique_id('c'), unique_id('d'))
        port = first.port
        rc = await asyncio.get_running_loop().run_in_executor(None, first.stop)
        self.assertEqual(rc, 0, first.log())
        await c.expect_close()  # the close code is checked by the SIGTERM test
        second = self.start(state_dir=state, port=port)
        self.assertEqual(second.port, port)
        await self.assert_pairs(second)

    async def test_sigint_also_shuts_down_cleanly(self):
        srv = self.start()
        c = await self.connect('c', server=srv)
        await c.open(unique_id('c'), unique_id('d'))
        rc = await asyncio.get_running_loop().run_in_executor(
            None, lambda: srv.stop(sig=signal.SIGINT))
        self.assertEqual(rc, 0, srv.log())
        await c.expect_close()  # the close code is checked by the SIGTERM test

    async def test_debug_log_level_starts_and_logs(self):
        srv = self.start(extra_args=['--log-level', 'debug'])
        await self.assert_pairs(srv)
        self.assertTrue(srv.log().strip())
        self.assertEqual(srv.stop(), 0)


if __name__ == '__main__':
    unittest.main()
