"""Optional call tokens: with --auth-secret every open must carry a token
made for its id (and peer, if bound) that has not expired; `duetd token`
mints them. Without a secret the tutorial protocol works as before."""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import shutil
import tempfile
import time
import unittest

import jwt

from duet_harness import WAIT, DuetTestCase, Server, run_duetd, unique_id

SECRET = 'a-secret-of-at-least-sixteen-bytes'


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def mint(secret, ident, peer='', expiry=None):
    """The token format, written independently of duetd's code."""
    expiry = int(time.time()) + 3600 if expiry is None else expiry
    signed = 'v1.' + b64url(('%d\n%s\n%s' % (expiry, ident, peer)).encode())
    mac = hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest()
    return signed + '.' + b64url(mac)


class AuthTest(DuetTestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='duet-auth-')
        cls.secret_file = os.path.join(cls.tmp, 'secret')
        with open(cls.secret_file, 'w') as f:
            f.write(SECRET + '\n')
        cls.audit = os.path.join(cls.tmp, 'audit.jsonl')
        cls.server = Server(extra_args=['--auth-secret', cls.secret_file, '--audit-log', cls.audit,
                                        '--plugin-opt', 'audit-log.flush-ms=20'])
        cls.server.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, True)

    async def open_with(self, token, me=None, peer=None):
        me, peer = me or unique_id('me'), peer or unique_id('peer')
        c = await self.connect(me)
        body = {'local': me, 'remote': peer}
        if token is not None:
            body['token'] = token
        await c.send_json({'open': body})
        return c, me, peer

    async def test_an_open_without_a_token_is_refused_with_auth_missing(self):
        c, _, _ = await self.open_with(None)
        self.assertError(await c.recv_json(), 'auth-missing')

    async def test_a_token_signed_with_another_secret_is_auth_invalid(self):
        me = unique_id('me')
        c, _, _ = await self.open_with(mint('another-secret-sixteen+', me), me=me)
        self.assertError(await c.recv_json(), 'auth-invalid')
        c2, _, _ = await self.open_with('v1.garbage')
        self.assertError(await c2.recv_json(), 'auth-invalid')

    async def test_an_expired_token_is_auth_expired(self):
        me = unique_id('me')
        c, _, _ = await self.open_with(mint(SECRET, me, expiry=int(time.time()) - 1), me=me)
        self.assertError(await c.recv_json(), 'auth-expired')

    async def test_a_token_for_another_id_or_peer_is_auth_wrong_id(self):
        c, _, _ = await self.open_with(mint(SECRET, 'someone-else'))
        self.assertError(await c.recv_json(), 'auth-wrong-id')
        me = unique_id('me')
        c2, _, _ = await self.open_with(mint(SECRET, me, peer='bob'), me=me, peer='carol')
        self.assertError(await c2.recv_json(), 'auth-wrong-id')

    async def test_valid_tokens_pair_and_relay(self):
        a_id, b_id = unique_id('a'), unique_id('b')
        a, _, _ = await self.open_with(mint(SECRET, a_id, peer=b_id), me=a_id, peer=b_id)
        await a.synced()  # a waits before b's open is read
        b, _, _ = await self.open_with(mint(SECRET, b_id), me=b_id, peer=a_id)
        self.assertEqual(await a.recv_json(), {'start': 'answer'})
        self.assertEqual(await b.recv_json(), {'start': 'offer'})

    async def test_a_refused_token_leaves_an_audit_record(self):
        c, _, _ = await self.open_with(None)
        self.assertError(await c.recv_json(), 'auth-missing')
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            with open(self.audit) as f:
                codes = [json.loads(l).get('code') for l in f if '"rejected"' in l]
            if 'auth-missing' in codes:
                return
            await asyncio.sleep(0.05)
        self.fail('no rejected record with code auth-missing in the audit log')


class TokenCommandTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='duet-token-')
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.secret_file = os.path.join(self.tmp, 'secret')
        with open(self.secret_file, 'w') as f:
            f.write(SECRET)

    def test_duetd_token_prints_a_token_bound_to_the_id_peer_and_expiry(self):
        # An HS256 JWT, checked with PyJWT (not duetd's code) and the secret.
        before = int(time.time())
        proc = run_duetd(['token', '--auth-secret', self.secret_file, '--id', 'alice', '--peer', 'bob',
                          '--ttl', '30m'])
        after = int(time.time()) + 1
        self.assertEqual(proc.returncode, 0, proc.stderr)
        token = proc.stdout.strip()
        self.assertEqual(jwt.get_unverified_header(token)['alg'], 'HS256')
        claims = jwt.decode(token, SECRET, algorithms=['HS256'], options={'require': ['sub', 'exp', 'iat']})
        self.assertEqual((claims['sub'], claims['peer']), ('alice', 'bob'))
        # Bounded by the clock around the command, however long it took.
        self.assertTrue(before <= claims['iat'] <= after, (before, claims['iat'], after))
        self.assertTrue(before + 1800 <= claims['exp'] <= after + 1800, (before, claims['exp'], after))
        self.assertEqual(claims['exp'] - claims['iat'], 1800)
        with self.assertRaises(jwt.InvalidSignatureError):
            jwt.decode(token, SECRET + 'x', algorithms=['HS256'])
        # Without --peer the token has no peer claim.
        proc = run_duetd(['token', '--auth-secret', self.secret_file, '--id', 'carol'])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        claims = jwt.decode(proc.stdout.strip(), SECRET, algorithms=['HS256'])
        self.assertEqual(claims['sub'], 'carol')
        self.assertNotIn('peer', claims)

    def test_bad_token_arguments_exit_2(self):
        for args in (['--id', 'a', '--ttl', 'soon'], ['--id', ''], ['--ttl', '1h'],
                     ['--id', 'a\nb']):
            with self.subTest(args=args):
                proc = run_duetd(['token', '--auth-secret', self.secret_file] + args)
                self.assertEqual(proc.returncode, 2, proc.stderr)

    def test_a_short_secret_is_refused(self):
        short = os.path.join(self.tmp, 'short')
        with open(short, 'w') as f:
            f.write('tiny')
        proc = run_duetd(['token', '--auth-secret', short, '--id', 'a'])
        self.assertEqual(proc.returncode, 2)
        self.assertIn('16 bytes', proc.stderr)


if __name__ == '__main__':
    unittest.main()
