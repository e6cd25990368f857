"""ICE servers from the server: after open each client is told its STUN/TURN
servers as {"iceServers":[...]}; with a TURN secret it gets its own
short-lived credentials in the coturn REST-API form. Without servers
configured nothing extra is sent (the tutorial flow stays byte for byte)."""

import base64
import hashlib
import hmac
import os
import tempfile
import time
import unittest

from duet_harness import SharedServerTestCase, run_duetd, unique_id

SECRET = 'north-wind-7'


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
        expected = base64.b64encode(hmac.new(SECRET.encode(), turn['username'].encode(), hashlib.sha1).digest())
        self.assertEqual(turn['credential'], expected.decode())

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
                     ['--turn-ttl', '5']):
            proc = run_duetd(base + args, timeout=5)
            self.assertEqual(proc.returncode, 2, '%s: %s' % (args, proc.stderr))


if __name__ == '__main__':
    unittest.main()
