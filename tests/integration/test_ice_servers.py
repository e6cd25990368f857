"""ICE servers from the server: after open each client is told its STUN/TURN
servers as {"iceServers":[...]}; with a TURN secret it gets its own
short-lived credentials in the coturn REST-API form, fresh ones before they
expire and after SIGHUP brings a new secret; --ice-transport-policy relay
adds "iceTransportPolicy":"relay". Without servers configured nothing extra
is sent (the tutorial flow stays byte for byte). test_turn_server puts such
credentials through a real coturn."""

import base64
import hashlib
import hmac
import os
import signal
import tempfile
import time
import unittest

from duet_harness import DuetTestCase, Server, SharedServerTestCase, eventually, run_duetd, stop_checked, unique_id

SECRET = 'north-wind-7'


def password_for(secret, username):
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


def write_secret(path, text):
    with open(path, 'w') as f:
        f.write(text)


class IceServersTest(SharedServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='duet-ice-')
        cls.secret_file = os.path.join(cls.tmp, 'turn-secret')
        with open(cls.secret_file, 'w') as f:
            f.write(SECRET + '\n')
        cls.server_args = ['--stun', 'stun:stun.example.org:3478', '--stun', 'stun:127.0.0.1',
                           '--turn', 'turn:turn.example.org:3478?transport=udp',
                           '--turn-secret', cls.secret_file, '--turn-ttl', '600']
        super().setUpClass()

    async def test_each_client_gets_its_servers_and_its_own_turn_credentials_after_open(self):
        me, peer = unique_id('me'), unique_id('peer')
        c = await self.connect(me)
        before = int(time.time())
        await c.open(me, peer)
        msg = await c.recv_json()
        self.assertEqual(list(msg), ['iceServers'])
        stun, turn = msg['iceServers']
        self.assertEqual(stun, {'urls': ['stun:stun.example.org:3478', 'stun:127.0.0.1']})
        self.assertEqual(turn['urls'], ['turn:turn.example.org:3478?transport=udp'])
        expiry, user = turn['username'].split(':', 1)
        self.assertEqual(user, me)
        self.assertTrue(before + 600 <= int(expiry) <= int(time.time()) + 600)
        self.assertEqual(turn['credential'], password_for(SECRET, turn['username']))

    async def test_the_pair_still_starts_after_the_ice_servers_message(self):
        a_id, b_id = unique_id('a'), unique_id('b')
        a = await self.connect(a_id)
        await a.open(a_id, b_id)
        self.assertIn('iceServers', await a.recv_json())
        b = await self.connect(b_id)
        await b.open(b_id, a_id)
        self.assertIn('iceServers', await b.recv_json())
        self.assertEqual(await a.recv_json(), {'start': 'answer'})
        self.assertEqual(await b.recv_json(), {'start': 'offer'})


class RelayOnlyTest(SharedServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='duet-ice-relay-')
        cls.secret_file = os.path.join(cls.tmp, 'turn-secret')
        write_secret(cls.secret_file, SECRET)
        cls.server_args = ['--turn', 'turn:turn.example.org:3478', '--turn-secret', cls.secret_file,
                           '--ice-transport-policy', 'relay']
        super().setUpClass()

    async def test_relay_policy_rides_along_with_the_servers(self):
        me = unique_id('me')
        c = await self.connect(me)
        await c.open(me, unique_id('peer'))
        msg = await c.recv_json()
        self.assertEqual(list(msg), ['iceServers', 'iceTransportPolicy'])
        self.assertEqual(msg['iceTransportPolicy'], 'relay')
        self.assertEqual(msg['iceServers'][0]['urls'], ['turn:turn.example.org:3478'])


class FreshCredentialsTest(DuetTestCase):
    """--turn-ttl 10 (the shortest): a client still connected gets fresh
    credentials when a quarter of the TTL is left, about 7.5 s in."""

    async def asyncSetUp(self):
        await super().asyncSetUp()
        tmp = tempfile.mkdtemp(prefix='duet-ice-fresh-')
        self.secret_file = os.path.join(tmp, 'turn-secret')
        write_secret(self.secret_file, SECRET + '\n')
        self.server = Server(extra_args=['--turn', 'turn:127.0.0.1:3478', '--turn-secret', self.secret_file,
                                         '--turn-ttl', '10'])
        self.server.__enter__()

    async def asyncTearDown(self):
        await super().asyncTearDown()
        stop_checked(self.server)

    async def test_a_client_still_connected_gets_fresh_credentials_before_they_expire(self):
        me = unique_id('me')
        c = await self.connect(me)
        await c.open(me, unique_id('peer'))
        first = (await c.recv_json())['iceServers'][0]
        second = (await c.recv_json(timeout=20))['iceServers'][0]
        received = int(time.time())
        first_expiry, _ = first['username'].split(':', 1)
        expiry, user = second['username'].split(':', 1)
        self.assertEqual(user, me)
        self.assertGreater(int(expiry), int(first_expiry))
        self.assertLess(received, int(first_expiry), 'the fresh ones came before the first ones expired')
        self.assertEqual(second['credential'], password_for(SECRET, second['username']))


class SecretReloadTest(DuetTestCase):
    """SIGHUP re-reads the --turn-secret file, like the certificate: a new
    secret reaches connected clients at once; an empty or missing file
    keeps the secret in use and says why in the log."""

    async def asyncSetUp(self):
        await super().asyncSetUp()
        tmp = tempfile.mkdtemp(prefix='duet-ice-reload-')
        self.secret_file = os.path.join(tmp, 'turn-secret')
        write_secret(self.secret_file, 'first-secret\n')
        self.server = Server(extra_args=['--turn', 'turn:127.0.0.1:3478', '--turn-secret', self.secret_file])
        self.server.__enter__()

    async def asyncTearDown(self):
        await super().asyncTearDown()
        stop_checked(self.server)

    async def credentials_of_a_new_client(self):
        me = unique_id('new')
        c = await self.connect(me)
        await c.open(me, unique_id('peer'))
        return (await c.recv_json())['iceServers'][0]

    def hup_and_wait_for(self, text):
        before = self.server.log().count(text)
        os.kill(self.server.proc.pid, signal.SIGHUP)
        return eventually(lambda: self.server.log().count(text) > before, what='the log line %r' % text)

    async def test_a_new_secret_reaches_connected_and_new_clients(self):
        me = unique_id('me')
        c = await self.connect(me)
        await c.open(me, unique_id('peer'))
        old = (await c.recv_json())['iceServers'][0]
        self.assertEqual(old['credential'], password_for('first-secret', old['username']))
        write_secret(self.secret_file, 'second-secret\n')
        await self.hup_and_wait_for('new TURN secret')
        fresh = (await c.recv_json())['iceServers'][0]
        self.assertEqual(fresh['credential'], password_for('second-secret', fresh['username']))
        new = await self.credentials_of_a_new_client()
        self.assertEqual(new['credential'], password_for('second-secret', new['username']))

    async def test_an_empty_or_missing_file_keeps_the_secret_in_use(self):
        write_secret(self.secret_file, '\n')
        await self.hup_and_wait_for('kept the TURN secret in use')
        self.assertIn('is empty', self.server.log())
        got = await self.credentials_of_a_new_client()
        self.assertEqual(got['credential'], password_for('first-secret', got['username']))
        os.remove(self.secret_file)
        await self.hup_and_wait_for('kept the TURN secret in use')
        self.assertIn('cannot read ' + self.secret_file, self.server.log())
        got = await self.credentials_of_a_new_client()
        self.assertEqual(got['credential'], password_for('first-secret', got['username']))


class NoIceServersTest(SharedServerTestCase):

    async def test_without_servers_nothing_is_sent_after_open(self):
        me = unique_id('me')
        c = await self.connect(me)
        await c.open(me, unique_id('peer'))
        await c.expect_nothing(0.4)


class IceOptionsTest(unittest.TestCase):

    def test_bad_urls_and_a_secret_without_turn_exit_2(self):
        tmp = tempfile.mkdtemp(prefix='duet-ice-opt-')
        secret = os.path.join(tmp, 's')
        with open(secret, 'w') as f:
            f.write('x')
        base = ['--address', '127.0.0.1', '--port', '0', '--state-dir', os.path.join(tmp, 'state')]
        for args in (['--stun', 'http://nope'], ['--turn', 'stun:wrong-scheme'], ['--turn-secret', secret],
                     ['--turn-ttl', '5'], ['--turn', 'turn:127.0.0.1', '--turn-secret', secret,
                                           '--ice-transport-policy', 'direct']):
            proc = run_duetd(base + args, timeout=30)
            self.assertEqual(proc.returncode, 2, '%s: %s' % (args, proc.stderr))

    def test_turn_without_a_secret_is_refused_at_start_up_in_words(self):
        tmp = tempfile.mkdtemp(prefix='duet-ice-opt-')
        base = ['--address', '127.0.0.1', '--port', '0', '--state-dir', os.path.join(tmp, 'state')]
        for extra in ([], ['--ice-transport-policy', 'relay']):
            proc = run_duetd(base + ['--turn', 'turn:127.0.0.1:3478'] + extra, timeout=30)
            self.assertEqual(proc.returncode, 2, proc.stderr)
            self.assertIn('--turn-secret FILE', proc.stderr)
            self.assertIn('browsers refuse a TURN server without credentials', proc.stderr)

    def test_relay_only_without_a_turn_server_is_refused_at_start_up_in_words(self):
        tmp = tempfile.mkdtemp(prefix='duet-ice-opt-')
        base = ['--address', '127.0.0.1', '--port', '0', '--state-dir', os.path.join(tmp, 'state')]
        proc = run_duetd(base + ['--stun', 'stun:127.0.0.1', '--ice-transport-policy', 'relay'], timeout=30)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("ice-transport-policy must be 'all' when no TURN server is given: relay-only calls need one "
                      "(--turn URL", proc.stderr)


if __name__ == '__main__':
    unittest.main()
