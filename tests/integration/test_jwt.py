"""JWT call tokens in the auth plugin: an open's token may be a compact JWS
signed with HS256 (--auth-secret), or RS256, ES256 or EdDSA with a key of a
JWKS (--auth-jwks) named by its kid. Tokens are made here by two libraries
that are not duetd's code: PyJWT (python3-jwt, with python3-cryptography for
the keys) and jose (Node.js, tests/push-service/node_modules, through
jwt_mint.mjs). Every refusal has its own error code and /metrics counter, a
refused token never reaches the log, the JWKS is re-read on SIGHUP, and the
old "v1." tokens keep working unless auth.legacy-tokens=off.

Run: DUETD=build/core/duetd /usr/bin/python3 tests/integration/test_jwt.py
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

# python3-jwt (PyJWT) and python3-cryptography: tools/install-deps --tests
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from duet_harness import HERE, REPO_ROOT, WAIT, DuetTestCase, Server, run_duetd, unique_id
from test_auth import mint as mint_v1
from test_metrics import scrape

SECRET = 'jwt-test-secret-of-at-least-sixteen-bytes'
AUDIENCE = 'duet-test'
ISSUER = 'https://issuer.duet.test'
MAX_TOKEN = 8192  # bytes: longer tokens are auth-too-large
NODE = os.environ.get('NODE', 'node')
MINT = os.path.join(HERE, 'jwt_mint.mjs')
JOSE = os.path.join(REPO_ROOT, 'tests', 'push-service', 'node_modules', 'jose', 'package.json')

# Every refusal code, and the /metrics counter each one has.
REFUSALS = ('auth-missing', 'auth-malformed', 'auth-too-large', 'auth-alg-refused', 'auth-unknown-kid',
            'auth-bad-signature', 'auth-expired', 'auth-not-yet-valid', 'auth-wrong-audience',
            'auth-wrong-issuer', 'auth-wrong-id', 'auth-wrong-peer')


def refused_metric(code):
    return 'duet_auth_tokens_refused_%s_total' % code[len('auth-'):].replace('-', '_')


ACCEPTED_METRIC = 'duet_auth_tokens_accepted_total'


def counter(scraped, name):
    """An unlabelled counter's value in a scrape of /metrics (0 if it has no line yet)."""
    return scraped.samples.get((name, ()), 0.0)


def setUpModule():
    if shutil.which(NODE) is None:
        raise unittest.SkipTest('%s is missing: Node.js runs jwt_mint.mjs (tools/install-deps --tests)' % NODE)
    if not os.path.isfile(JOSE):
        raise unittest.SkipTest('the npm module jose is missing in tests/push-service: '
                                'run tools/install-deps --tests (npm ci there)')
    Keys.make()


# ---------------------------------------------------------------------------
# Keys and JWKS, written from the key numbers
# ---------------------------------------------------------------------------

def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))


def b64url_uint(n, length=None):
    """A JWK integer: big-endian, as few bytes as it needs (or exactly length)."""
    return b64url(n.to_bytes(length or max(1, (n.bit_length() + 7) // 8), 'big'))


def public_jwk(key, kid, alg=None):
    """The public JWK of a cryptography private key, with kid (and alg)."""
    if isinstance(key, rsa.RSAPrivateKey):
        nums = key.public_key().public_numbers()
        jwk = {'kty': 'RSA', 'n': b64url_uint(nums.n), 'e': b64url_uint(nums.e)}
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        nums = key.public_key().public_numbers()
        jwk = {'kty': 'EC', 'crv': 'P-256', 'x': b64url_uint(nums.x, 32), 'y': b64url_uint(nums.y, 32)}
    else:
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = {'kty': 'OKP', 'crv': 'Ed25519', 'x': b64url(raw)}
    jwk['kid'] = kid
    if alg:
        jwk['alg'] = alg
    return jwk


def private_jwk(key):
    """The private JWK (no kid) of a cryptography key or an HMAC secret, for jose."""
    if isinstance(key, (str, bytes)):
        return {'kty': 'oct', 'k': b64url(key)}
    if isinstance(key, rsa.RSAPrivateKey):
        nums = key.private_numbers()
        jwk = public_jwk(key, None)
        jwk.update(d=b64url_uint(nums.d), p=b64url_uint(nums.p), q=b64url_uint(nums.q),
                   dp=b64url_uint(nums.dmp1), dq=b64url_uint(nums.dmq1), qi=b64url_uint(nums.iqmp))
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        jwk = public_jwk(key, None)
        jwk['d'] = b64url_uint(key.private_numbers().private_value, 32)
    else:
        jwk = public_jwk(key, None)
        jwk['d'] = b64url(key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                            serialization.NoEncryption()))
    del jwk['kid']
    return jwk


class Keys:
    """The test's keys, made once per run (setUpModule).

    In the JWKS: rsa (kid rsa-1, alg RS256), rsa_noalg (kid rsa-2, no alg),
    ec (kid ec-1, alg ES256), ed (kid ed-1, no alg). Never in any JWKS:
    other_rsa, other_ec, other_ed (a signature by them under a known kid is
    a bad signature) and later (kid ec-later, added on SIGHUP)."""

    @classmethod
    def make(cls):
        if hasattr(cls, 'rsa'):
            return
        cls.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cls.rsa_noalg = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cls.other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cls.ec = ec.generate_private_key(ec.SECP256R1())
        cls.other_ec = ec.generate_private_key(ec.SECP256R1())
        cls.later = ec.generate_private_key(ec.SECP256R1())
        cls.ed = ed25519.Ed25519PrivateKey.generate()
        cls.other_ed = ed25519.Ed25519PrivateKey.generate()

    @classmethod
    def jwks(cls):
        return {'keys': [public_jwk(cls.rsa, 'rsa-1', 'RS256'), public_jwk(cls.rsa_noalg, 'rsa-2'),
                         public_jwk(cls.ec, 'ec-1', 'ES256'), public_jwk(cls.ed, 'ed-1')]}

    @classmethod
    def signer(cls, alg):
        """(key, kid) that signs alg for the servers' configuration."""
        return {'HS256': (SECRET, None), 'RS256': (cls.rsa, 'rsa-1'), 'ES256': (cls.ec, 'ec-1'),
                'EdDSA': (cls.ed, 'ed-1')}[alg]


def write_json(path, obj):
    """Writes obj as JSON to path in one step (a reader never sees half)."""
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------

_DROP = object()


def claims(sub, peer=None, /, **extra):
    """A claim set for sub (and peer) valid for an hour, with the audience
    and issuer the main server wants. extra adds or replaces claims (exp,
    nbf, aud, even sub...) or, given _DROP, removes one."""
    now = int(time.time())
    c = {'sub': sub, 'iat': now, 'exp': now + 3600, 'aud': AUDIENCE, 'iss': ISSUER}
    if peer is not None:
        c['peer'] = peer
    for k, v in extra.items():
        if v is _DROP:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def py_token(alg, claim_set, key=None, kid=None, headers=None):
    """A token made by PyJWT; key and kid default to the server's for alg
    (kid=False: no kid)."""
    default_key, default_kid = Keys.signer(alg) if alg in ('HS256', 'RS256', 'ES256', 'EdDSA') else (None, None)
    key = default_key if key is None else key
    kid = default_kid if kid is None else kid
    h = dict(headers or {})
    if kid:
        h['kid'] = kid
    return jwt.encode(claim_set, key, algorithm=alg, headers=h or None)


def jose_tokens(requests):
    """Tokens made by jose (node jwt_mint.mjs), one per request:
    (alg, claims) or (alg, claims, key, kid) with key a cryptography key or
    secret and kid a string or False (no kid)."""
    batch = []
    for r in requests:
        alg, claim_set = r[0], r[1]
        key, kid = Keys.signer(alg)
        if len(r) > 2:
            key, kid = r[2], r[3]
        req = {'alg': alg, 'jwk': private_jwk(key), 'claims': claim_set}
        if kid:
            req['kid'] = kid
        batch.append(req)
    proc = subprocess.run([NODE, MINT], input=json.dumps(batch), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          errors='replace', timeout=120)
    if proc.returncode != 0:
        raise AssertionError('jwt_mint.mjs failed (exit %s):\n%s' % (proc.returncode, proc.stderr))
    tokens = proc.stdout.split()
    if len(tokens) != len(batch):
        raise AssertionError('jwt_mint.mjs printed %d tokens for %d requests: %r'
                             % (len(tokens), len(batch), proc.stdout))
    return tokens


def jose_token(alg, claim_set, key=None, kid=None):
    if key is None:
        return jose_tokens([(alg, claim_set)])[0]
    return jose_tokens([(alg, claim_set, key, kid)])[0]


def raw_token(header, payload, sign=None, key=None):
    """A compact JWS put together by hand: header and payload are objects
    (dumped as JSON) or bytes (used as they are); sign is 'HS256' (with key,
    bytes) or None (an empty signature)."""
    parts = [b64url(p if isinstance(p, bytes) else json.dumps(p, separators=(',', ':')).encode())
             for p in (header, payload)]
    signing_input = '.'.join(parts).encode()
    sig = b''
    if sign == 'HS256':
        sig = hmac.new(key, signing_input, hashlib.sha256).digest()
    return '.'.join(parts + [b64url(sig)])


def hs256_over(signing_input):
    """signing_input (any text) and its HS256 signature with SECRET."""
    mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + '.' + b64url(mac)


def flip_signature(token):
    """The token with one bit of one byte in the middle of its signature flipped."""
    head, payload, sig = token.split('.')
    raw = bytearray(b64url_decode(sig))
    raw[len(raw) // 2] ^= 0x01
    return '.'.join([head, payload, b64url(bytes(raw))])


def swap_payload(token, claim_set):
    """The token's header and signature around another payload."""
    head, _, sig = token.split('.')
    return '.'.join([head, b64url(json.dumps(claim_set)), sig])


def sized_hs256(length, sub, peer=None):
    """A valid HS256 token (made by PyJWT) of exactly length characters."""
    base = claims(sub, peer)

    def make(pad, extra):
        headers = {'x': 'y' * extra} if extra else None
        return jwt.encode(dict(base, pad='p' * pad), SECRET, algorithm='HS256', headers=headers)
    # Each byte of padding adds 4/3 of a character; a header member of 1 to
    # 3 characters shifts the length by amounts that reach every remainder.
    start = max(0, (length - len(make(0, 0))) * 3 // 4 - 16)
    for pad in range(start, start + 48):
        for extra in range(4):
            token = make(pad, extra)
            if len(token) == length:
                return token
    raise AssertionError('could not make an HS256 token of %d characters' % length)


def es256_with_der_signature(token):
    """The ES256 token with its raw r||s signature turned into DER (what
    OpenSSL makes; JWS wants the raw form)."""
    head, payload, sig = token.split('.')
    raw = b64url_decode(sig)
    der = encode_dss_signature(int.from_bytes(raw[:32], 'big'), int.from_bytes(raw[32:], 'big'))
    return '.'.join([head, payload, b64url(der)])


# ---------------------------------------------------------------------------
# Talking to duetd
# ---------------------------------------------------------------------------

def stop_and_log(srv):
    """Stops srv (SIGTERM; exit code 0 required), removes its files and
    returns its whole log."""
    try:
        rc = srv.stop()
    finally:
        log = srv.log()
        srv.cleanup()
    if rc != 0:
        raise AssertionError('duetd exited with %s on SIGTERM (expected 0).\nstderr:\n%s' % (rc, log[-20000:]))
    return log


class JwtCase(DuetTestCase):
    """Opens with tokens, and what the server answered."""

    refused_tokens = None  # a class's list of the tokens its server refused
    maxDiff = None

    async def answers(self, token, me, peer, server=None):
        """Sends {"open":{local: me, remote: peer, token}} (no token member
        for None) on a new connection and returns every message the server
        answered before the pong of a JSON ping sent after it: [] for an
        accepted open that waits for its partner. Closes the connection."""
        c = await self.connect(me, server=server)
        body = {'local': me, 'remote': peer}
        if token is not None:
            body['token'] = token
        await c.send_json({'open': body})
        try:
            return await c.replies_before_pong()
        finally:
            await c.close()

    async def assertAccepted(self, token, me, peer=None, server=None, what=''):
        peer = peer or unique_id('peer')
        got = await self.answers(token, me, peer, server)
        self.assertEqual(got, [], '%s: the open with token %r was not accepted' % (what or 'token', token))

    async def assertRefused(self, token, code, me=None, peer=None, server=None, what=''):
        me, peer = me or unique_id('me'), peer or unique_id('peer')
        if self.refused_tokens is not None and token:
            self.refused_tokens.append(token)
        got = await self.answers(token, me, peer, server)
        ctx = '%s (open %s -> %s, token %r)' % (what or 'token', me, peer, (token or '')[:200])
        self.assertEqual(len(got), 1, '%s: expected one error, got %r' % (ctx, got))
        return self.assertError(got[0], code, ctx)

    async def assertPairs(self, token_a, a_id, token_b, b_id, server=None, what=''):
        """a opens (and waits), b opens: a is told to answer, b to offer."""
        a = await self.connect(a_id, server=server)
        await a.send_json({'open': {'local': a_id, 'remote': b_id, 'token': token_a}})
        self.assertEqual(await a.replies_before_pong(), [], '%s: a\'s open (token %r)' % (what, token_a))
        b = await self.connect(b_id, server=server)
        await b.send_json({'open': {'local': b_id, 'remote': a_id, 'token': token_b}})
        self.assertEqual(await a.recv_json(), {'start': 'answer'}, '%s: the waiting peer' % what)
        self.assertEqual(await b.recv_json(), {'start': 'offer'}, '%s: the newcomer' % what)
        await a.close()
        await b.close()

    async def pair_with(self, alg, lib):
        """Two ids pair with tokens of alg made by lib: a's names b as peer, b's has no peer."""
        a_id, b_id = unique_id('a'), unique_id('b')
        if lib == 'pyjwt':
            ta, tb = py_token(alg, claims(a_id, b_id)), py_token(alg, claims(b_id))
        else:
            ta, tb = jose_tokens([(alg, claims(a_id, b_id)), (alg, claims(b_id))])
        self.assertEqual(jwt.get_unverified_header(ta)['alg'], alg)
        await self.assertPairs(ta, a_id, tb, b_id, what='%s by %s' % (alg, lib))

    def refusal_catalogue(self):
        """One token of every refusal, for the main servers' configuration
        (secret, JWKS, audience, issuer): a list of (what, token, code, me,
        peer)."""
        me, peer = unique_id('me'), unique_id('peer')
        now = int(time.time())
        c = claims(me, peer)
        return [
            ('no token', None, 'auth-missing', me, peer),
            ('two parts', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0', 'auth-malformed', me, peer),
            ('oversized', sized_hs256(MAX_TOKEN + 1, me, peer), 'auth-too-large', me, peer),
            ('alg none', raw_token({'alg': 'none', 'typ': 'JWT'}, c), 'auth-alg-refused', me, peer),
            ('unknown kid', py_token('RS256', c, kid='no-such-key'), 'auth-unknown-kid', me, peer),
            ('flipped signature', flip_signature(py_token('ES256', c)), 'auth-bad-signature', me, peer),
            ('expired', py_token('HS256', claims(me, peer, exp=now - 3600)), 'auth-expired', me, peer),
            ('nbf in an hour', py_token('EdDSA', claims(me, peer, nbf=now + 3600)), 'auth-not-yet-valid', me, peer),
            ('wrong aud', py_token('RS256', claims(me, peer, aud='another')), 'auth-wrong-audience', me, peer),
            ('wrong iss', py_token('HS256', claims(me, peer, iss='https://else')), 'auth-wrong-issuer', me, peer),
            ('wrong sub', py_token('HS256', claims('someone-else', peer)), 'auth-wrong-id', me, peer),
            ('wrong peer', py_token('HS256', claims(me, 'not-' + peer)), 'auth-wrong-peer', me, peer),
        ]


def main_server_args(tmp, extra=()):
    """A secret file (trailing newline) and a JWKS in tmp; the options for a
    server that takes both, with audience and issuer."""
    secret_file = os.path.join(tmp, 'secret')
    with open(secret_file, 'w') as f:
        f.write(SECRET + '\n')
    jwks_file = os.path.join(tmp, 'keys.json')
    write_json(jwks_file, Keys.jwks())
    return ['--auth-secret', secret_file, '--auth-jwks', jwks_file, '--auth-audience', AUDIENCE,
            '--auth-issuer', ISSUER, '--max-connections-per-ip', '1000'] + list(extra)


class JwtServerCase(JwtCase):
    """One duetd for the class, taking server_args(tmp); at the end, none of
    the tokens it refused may be in its log."""

    @classmethod
    def server_args(cls, tmp):
        return main_server_args(tmp)

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='duet-jwt-')
        cls.refused_tokens = []
        cls.server = Server(extra_args=cls.server_args(cls.tmp))
        cls.server.__enter__()

    @classmethod
    def tearDownClass(cls):
        try:
            log = stop_and_log(cls.server)
        finally:
            shutil.rmtree(cls.tmp, True)
        # (a token too short to be told from other text is left out)
        leaked = [t for t in cls.refused_tokens if len(t) >= 20 and t in log
                  or len(t.split('.')[-1]) >= 16 and t.split('.')[-1] in log]
        if leaked:
            raise AssertionError('refused tokens in duetd\'s log: %r\nlog:\n%s' % (leaked[:3], log[-5000:]))


# ---------------------------------------------------------------------------
# The main server: --auth-secret, --auth-jwks, --auth-audience, --auth-issuer
# ---------------------------------------------------------------------------

class AcceptedTest(JwtServerCase):
    """Tokens every part of which is right: the open is taken and pairs."""

    async def test_hs256_by_pyjwt_pairs(self):
        await self.pair_with('HS256', 'pyjwt')

    async def test_hs256_by_jose_pairs(self):
        await self.pair_with('HS256', 'jose')

    async def test_rs256_by_pyjwt_pairs(self):
        await self.pair_with('RS256', 'pyjwt')

    async def test_rs256_by_jose_pairs(self):
        await self.pair_with('RS256', 'jose')

    async def test_es256_by_pyjwt_pairs(self):
        await self.pair_with('ES256', 'pyjwt')

    async def test_es256_by_jose_pairs(self):
        await self.pair_with('ES256', 'jose')

    async def test_eddsa_by_pyjwt_pairs(self):
        await self.pair_with('EdDSA', 'pyjwt')

    async def test_eddsa_by_jose_pairs(self):
        await self.pair_with('EdDSA', 'jose')

    async def test_an_rsa_key_without_alg_in_the_jwks_verifies_rs256(self):
        me = unique_id('me')
        await self.assertAccepted(py_token('RS256', claims(me), key=Keys.rsa_noalg, kid='rsa-2'), me)
        me = unique_id('me')
        await self.assertAccepted(jose_token('RS256', claims(me), Keys.rsa_noalg, 'rsa-2'), me)

    async def test_aud_may_be_an_array_that_contains_the_audience(self):
        me = unique_id('me')
        await self.assertAccepted(py_token('ES256', claims(me, aud=['other', AUDIENCE])), me)
        me = unique_id('me')
        await self.assertAccepted(jose_token('HS256', claims(me, aud=[AUDIENCE])), me)

    async def test_exp_and_nbf_within_the_default_clock_skew_are_accepted(self):
        now = int(time.time())
        # 60 s of skew by default: 15 s past exp and 15 s before nbf pass.
        me = unique_id('me')
        await self.assertAccepted(py_token('HS256', claims(me, exp=now - 15)), me, what='exp 15 s ago')
        me = unique_id('me')
        await self.assertAccepted(py_token('RS256', claims(me, nbf=now + 15)), me, what='nbf in 15 s')
        me = unique_id('me')
        await self.assertAccepted(jose_token('EdDSA', claims(me, nbf=now - 60)), me, what='nbf a minute ago')

    async def test_a_token_of_exactly_8192_bytes_is_accepted(self):
        me = unique_id('me')
        token = sized_hs256(MAX_TOKEN, me)
        self.assertEqual(len(token), MAX_TOKEN)
        await self.assertAccepted(token, me)

    async def test_a_token_without_peer_takes_any_remote(self):
        me = unique_id('me')
        token = py_token('ES256', claims(me))
        await self.assertAccepted(token, me, unique_id('x'))

    async def test_legacy_v1_tokens_still_pair_by_default(self):
        a_id, b_id = unique_id('a'), unique_id('b')
        await self.assertPairs(mint_v1(SECRET, a_id, peer=b_id), a_id, mint_v1(SECRET, b_id), b_id, what='v1')

    async def test_a_jwt_and_a_v1_token_pair_with_each_other(self):
        a_id, b_id = unique_id('a'), unique_id('b')
        await self.assertPairs(jose_token('RS256', claims(a_id, b_id)), a_id, mint_v1(SECRET, b_id), b_id,
                               what='RS256 + v1')


class RefusedTest(JwtServerCase):
    """Every refusal's code (the socket stays open: the ping after the open
    is answered)."""

    async def test_an_open_without_a_token_is_auth_missing(self):
        await self.assertRefused(None, 'auth-missing')

    async def test_alg_none_is_refused(self):
        me = unique_id('me')
        c = claims(me)
        for header, sig in (({'alg': 'none', 'typ': 'JWT'}, None), ({'alg': 'none'}, None),
                            ({'alg': 'none', 'kid': 'rsa-1'}, None), ({'alg': 'None'}, None),
                            ({'alg': 'NONE'}, None), ({'alg': 'none'}, 'HS256')):
            with self.subTest(header=header, signed=bool(sig)):
                token = raw_token(header, c, sig, SECRET.encode())
                await self.assertRefused(token, 'auth-alg-refused', me, what=str(header))
        # PyJWT's own unsecured JWT
        token = jwt.encode(c, None, algorithm='none')
        await self.assertRefused(token, 'auth-alg-refused', me, what='PyJWT alg none')

    async def test_algorithms_duetd_does_not_take_are_refused(self):
        me = unique_id('me')
        c = claims(me)
        for alg, key, kid in (('HS512', SECRET, None), ('HS384', SECRET, None), ('RS512', Keys.rsa, 'rsa-1'),
                              ('PS256', Keys.rsa_noalg, 'rsa-2')):
            with self.subTest(alg=alg):
                await self.assertRefused(py_token(alg, c, key=key, kid=kid or False), 'auth-alg-refused', me,
                                         what=alg)

    async def test_the_rsa_public_key_as_an_hs256_secret_is_refused(self):
        # The classic confusion: an HS256 token whose kid names an RSA key,
        # "signed" with that public key as the HMAC secret, in every form a
        # verifier might turn it into bytes. None may pass (the attack), and
        # each is auth-alg-refused (the alg does not fit the kid's key).
        me = unique_id('me')
        c = claims(me)
        for kid, key in (('rsa-1', Keys.rsa), ('rsa-2', Keys.rsa_noalg)):
            pub = key.public_key()
            jwk = public_jwk(key, kid, 'RS256' if kid == 'rsa-1' else None)
            spki, pkcs1 = serialization.PublicFormat.SubjectPublicKeyInfo, serialization.PublicFormat.PKCS1
            pem, der = serialization.Encoding.PEM, serialization.Encoding.DER
            secrets = {
                'PEM SPKI': pub.public_bytes(pem, spki),
                'PEM SPKI without its last newline': pub.public_bytes(pem, spki).rstrip(b'\n'),
                'PEM PKCS1': pub.public_bytes(pem, pkcs1),
                'DER SPKI': pub.public_bytes(der, spki),
                'DER PKCS1': pub.public_bytes(der, pkcs1),
                'n': b64url_decode(jwk['n']),
                'JWK JSON': json.dumps(jwk).encode(),
                'JWK JSON compact': json.dumps(jwk, separators=(',', ':')).encode(),
            }
            with self.subTest(kid=kid):
                answers = {}
                for form, secret in secrets.items():
                    token = raw_token({'alg': 'HS256', 'typ': 'JWT', 'kid': kid}, c, 'HS256', secret)
                    self.refused_tokens.append(token)
                    answers[form] = await self.answers(token, me, unique_id('peer'))
                accepted = [form for form, got in answers.items() if not got]
                self.assertEqual(accepted, [], 'HS256 tokens signed with %s\'s public key passed' % kid)
                codes = {form: got[0].get('error', {}).get('code') for form, got in answers.items()}
                self.assertEqual(codes, {form: 'auth-alg-refused' for form in secrets},
                                 'HS256 tokens "signed" with %s\'s public key, by form of the key' % kid)

    async def test_an_hs256_token_whose_kid_names_a_jwks_key_is_refused_even_with_the_secret(self):
        # HS256 fits no key of the JWKS: the kid names the key, and its key
        # decides the algorithm, whatever signed the token.
        me = unique_id('me')
        for kid in ('rsa-1', 'rsa-2', 'ec-1', 'ed-1'):
            with self.subTest(kid=kid):
                await self.assertRefused(py_token('HS256', claims(me), kid=kid), 'auth-alg-refused', me,
                                         what='HS256 signed with the secret, kid %s' % kid)

    async def test_an_alg_that_does_not_fit_the_kid_s_key_is_refused(self):
        me = unique_id('me')
        c = claims(me)
        cases = [
            ('ES256 token, kid of the Ed25519 key', py_token('ES256', c, kid='ed-1')),
            ('ES256 token, kid of an RSA key', py_token('ES256', c, kid='rsa-2')),
            ('EdDSA token, kid of the P-256 key', py_token('EdDSA', c, kid='ec-1')),
            ('RS256 token, kid of the P-256 key', py_token('RS256', c, kid='ec-1')),
            ('RS256 token, kid of the Ed25519 key', jose_token('RS256', c, Keys.rsa, 'ed-1')),
            ('EdDSA token, kid of an RSA key', jose_token('EdDSA', c, Keys.ed, 'rsa-1')),
        ]
        for what, token in cases:
            with self.subTest(what):
                await self.assertRefused(token, 'auth-alg-refused', me, what=what)

    async def test_an_unknown_or_missing_kid_is_auth_unknown_kid(self):
        me = unique_id('me')
        c = claims(me)
        cases = [
            ('RS256, kid not in the JWKS', py_token('RS256', c, kid='no-such-key')),
            ('ES256, kid not in the JWKS', jose_token('ES256', c, Keys.ec, 'EC-1')),
            ('RS256 without kid', py_token('RS256', c, kid=False)),
            ('ES256 without kid', jose_token('ES256', c, Keys.ec, False)),
            ('EdDSA without kid', py_token('EdDSA', c, kid=False)),
        ]
        for what, token in cases:
            with self.subTest(what):
                await self.assertRefused(token, 'auth-unknown-kid', me, what=what)

    async def test_a_flipped_signature_byte_is_auth_bad_signature(self):
        me = unique_id('me')
        c = claims(me)
        good = {('pyjwt', alg): py_token(alg, c) for alg in ('HS256', 'RS256', 'ES256', 'EdDSA')}
        jose = jose_tokens([(alg, c) for alg in ('HS256', 'RS256', 'ES256', 'EdDSA')])
        good.update({('jose', alg): t for alg, t in zip(('HS256', 'RS256', 'ES256', 'EdDSA'), jose)})
        for (lib, alg), token in good.items():
            with self.subTest(lib=lib, alg=alg):
                await self.assertRefused(flip_signature(token), 'auth-bad-signature', me,
                                         what='%s by %s, one bit flipped' % (alg, lib))

    async def test_a_signature_by_another_key_under_a_known_kid_is_auth_bad_signature(self):
        me = unique_id('me')
        c = claims(me)
        cases = [
            ('HS256 with another secret', py_token('HS256', c, key='another-secret-of-sixteen-bytes+')),
            ('RS256 by another key as rsa-1', py_token('RS256', c, key=Keys.other_rsa, kid='rsa-1')),
            ('RS256 by rsa-2\'s key as rsa-1', jose_token('RS256', c, Keys.rsa_noalg, 'rsa-1')),
            ('ES256 by another key as ec-1', jose_token('ES256', c, Keys.other_ec, 'ec-1')),
            ('EdDSA by another key as ed-1', py_token('EdDSA', c, key=Keys.other_ed, kid='ed-1')),
        ]
        for what, token in cases:
            with self.subTest(what):
                await self.assertRefused(token, 'auth-bad-signature', me, what=what)

    async def test_a_changed_payload_is_auth_bad_signature(self):
        me = unique_id('me')
        for alg in ('HS256', 'RS256', 'ES256', 'EdDSA'):
            with self.subTest(alg=alg):
                token = swap_payload(py_token(alg, claims('someone-else')), claims(me))
                await self.assertRefused(token, 'auth-bad-signature', me, what='%s, payload swapped' % alg)

    async def test_an_es256_signature_in_der_form_is_refused(self):
        me = unique_id('me')
        token = es256_with_der_signature(py_token('ES256', claims(me)))
        await self.assertRefused(token, {'auth-bad-signature', 'auth-malformed'}, me, what='ES256, DER signature')

    async def test_an_expired_token_is_auth_expired(self):
        me = unique_id('me')
        old = int(time.time()) - 3600
        for what, token in (('HS256 by PyJWT', py_token('HS256', claims(me, exp=old))),
                            ('RS256 by jose', jose_token('RS256', claims(me, exp=old))),
                            ('EdDSA by PyJWT, exp 0', py_token('EdDSA', claims(me, exp=0)))):
            with self.subTest(what):
                await self.assertRefused(token, 'auth-expired', me, what=what)

    async def test_a_token_not_valid_yet_is_auth_not_yet_valid(self):
        me = unique_id('me')
        later = int(time.time()) + 3600
        for what, token in (('HS256 by PyJWT', py_token('HS256', claims(me, nbf=later))),
                            ('ES256 by jose', jose_token('ES256', claims(me, nbf=later)))):
            with self.subTest(what):
                await self.assertRefused(token, 'auth-not-yet-valid', me, what=what)

    async def test_a_token_without_its_audience_is_auth_wrong_audience(self):
        me = unique_id('me')
        for what, token in (('another aud', py_token('HS256', claims(me, aud='another'))),
                            ('an array without it', py_token('RS256', claims(me, aud=['a', 'b']))),
                            ('no aud', jose_token('ES256', claims(me, aud=_DROP))),
                            ('a longer aud', py_token('HS256', claims(me, aud=AUDIENCE + 'x'))),
                            ('an empty array', jose_token('EdDSA', claims(me, aud=[])))):
            with self.subTest(what):
                await self.assertRefused(token, 'auth-wrong-audience', me, what=what)

    async def test_a_token_from_another_issuer_is_auth_wrong_issuer(self):
        me = unique_id('me')
        for what, token in (('another iss', py_token('HS256', claims(me, iss='https://else.test'))),
                            ('no iss', jose_token('RS256', claims(me, iss=_DROP))),
                            ('a prefix of it', py_token('EdDSA', claims(me, iss=ISSUER[:-1])))):
            with self.subTest(what):
                await self.assertRefused(token, 'auth-wrong-issuer', me, what=what)

    async def test_a_token_for_another_id_is_auth_wrong_id(self):
        me, peer = unique_id('me'), unique_id('peer')
        for what, token in (('HS256', py_token('HS256', claims('someone-else', peer))),
                            ('ES256 by jose', jose_token('ES256', claims(me + 'x', peer))),
                            ('sub a prefix of the id', py_token('RS256', claims(me[:-1], peer)))):
            with self.subTest(what):
                await self.assertRefused(token, 'auth-wrong-id', me, peer, what=what)

    async def test_a_token_for_another_peer_is_auth_wrong_peer(self):
        me, peer = unique_id('me'), unique_id('peer')
        for what, token in (('HS256', py_token('HS256', claims(me, 'carol'))),
                            ('EdDSA by jose', jose_token('EdDSA', claims(me, peer + 'x'))),
                            ('RS256', py_token('RS256', claims(me, peer[:-1])))):
            with self.subTest(what):
                await self.assertRefused(token, 'auth-wrong-peer', me, peer, what=what)

    async def test_malformed_tokens_are_auth_malformed(self):
        me = unique_id('me')
        good = py_token('HS256', claims(me))
        head, payload, sig = good.split('.')
        hs = {'alg': 'HS256', 'typ': 'JWT'}
        key = SECRET.encode()
        cases = [
            ('one part', 'abcdef'),
            ('two parts', head + '.' + payload),
            ('four parts', good + '.' + sig),
            ('five parts (a JWE)', '.'.join([head, payload, sig, sig, sig])),
            ('empty parts', '..'),
            # signed over the text as it is: the only fault is the character
            ('a bad base64url character in the header', hs256_over('!' + head[1:] + '.' + payload)),
            ('a bad base64url character in the payload', hs256_over(head + '.' + payload[:-1] + '*')),
            ('a space in the payload', hs256_over(head + '.' + payload[:10] + ' ' + payload[10:])),
            ('standard base64 (+/) in the payload', hs256_over(head + '.' + payload[:-2] + '+/')),
            ('a bad base64url character in the signature', head + '.' + payload + '.' + sig[:-2] + '$$'),
            ('a header that is not JSON', raw_token(b'{"alg":"HS256"', claims(me), 'HS256', key)),
            ('a payload that is not JSON', raw_token(hs, b'{"sub":"%s",' % me.encode(), 'HS256', key)),
            ('a payload that is a JSON array', raw_token(hs, [me], 'HS256', key)),
            ('a payload that is a JSON string', raw_token(hs, me, 'HS256', key)),
            ('a header that is a JSON array', raw_token(['HS256'], claims(me), 'HS256', key)),
            ('no sub', raw_token(hs, claims(me, sub=_DROP), 'HS256', key)),
            ('sub a number', raw_token(hs, claims(me, sub=42), 'HS256', key)),
            ('sub null', raw_token(hs, claims(me, sub=None), 'HS256', key)),
            ('no exp', raw_token(hs, claims(me, exp=_DROP), 'HS256', key)),
            ('exp a string', raw_token(hs, claims(me, exp=str(int(time.time()) + 3600)), 'HS256', key)),
            ('exp null', raw_token(hs, claims(me, exp=None), 'HS256', key)),
            ('exp true', raw_token(hs, claims(me, exp=True), 'HS256', key)),
        ]
        for what, token in cases:
            with self.subTest(what):
                await self.assertRefused(token, 'auth-malformed', me, what=what)

    async def test_empty_short_long_and_zero_signatures_never_pass(self):
        me = unique_id('me')
        c = claims(me)
        hs, rs, es, ed = (py_token(a, c) for a in ('HS256', 'RS256', 'ES256', 'EdDSA'))

        def with_sig(token, raw):
            return token.rsplit('.', 1)[0] + '.' + b64url(raw)
        cases = [
            ('HS256, an empty signature', with_sig(hs, b'')),
            ('HS256, the first byte of the signature', with_sig(hs, b64url_decode(hs.split('.')[2])[:1])),
            ('HS256, the first 16 bytes of the signature', with_sig(hs, b64url_decode(hs.split('.')[2])[:16])),
            ('HS256, a byte added to the signature', with_sig(hs, b64url_decode(hs.split('.')[2]) + b'\0')),
            ('RS256, an empty signature', with_sig(rs, b'')),
            ('RS256, a signature cut short', with_sig(rs, b64url_decode(rs.split('.')[2])[:-1])),
            # CVE-2022-21449: r = s = 0 verified every message in some ECDSA code
            ('ES256, r = s = 0', with_sig(es, bytes(64))),
            ('ES256, a 63-byte signature', with_sig(es, b64url_decode(es.split('.')[2])[:63])),
            ('ES256, an empty signature', with_sig(es, b'')),
            ('EdDSA, all zeros', with_sig(ed, bytes(64))),
            ('EdDSA, an empty signature', with_sig(ed, b'')),
        ]
        for what, token in cases:
            with self.subTest(what):
                await self.assertRefused(token, {'auth-bad-signature', 'auth-malformed'}, me, what=what)

    async def test_odd_claim_values_are_refused_or_taken_without_harm(self):
        me, peer = unique_id('me'), unique_id('peer')
        key = SECRET.encode()
        hs = {'alg': 'HS256', 'typ': 'JWT'}
        # A NUL must not cut an id short.
        await self.assertRefused(raw_token(hs, claims(me + '\0junk', peer), 'HS256', key),
                                 {'auth-wrong-id', 'auth-malformed'}, me, peer, what='sub with a NUL after the id')
        await self.assertRefused(raw_token(hs, claims(me, peer + '\0junk'), 'HS256', key),
                                 {'auth-wrong-peer', 'auth-malformed'}, me, peer, what='peer with a NUL after it')
        await self.assertRefused(raw_token(hs, claims(me, 42), 'HS256', key),
                                 {'auth-wrong-peer', 'auth-malformed'}, me, peer, what='peer a number')
        await self.assertRefused(raw_token({'typ': 'JWT'}, claims(me), 'HS256', key),
                                 {'auth-malformed', 'auth-alg-refused'}, me, what='no alg in the header')
        # Numbers a C++ cast could mishandle: taken or refused, never a crash.
        for what, extra, codes in (('exp 1e20', {'exp': 1e20}, {'auth-malformed'}),
                                   ('exp 2^63', {'exp': 2 ** 63}, {'auth-malformed'}),
                                   ('exp 2^64 + 1', {'exp': 2 ** 64 + 1}, {'auth-malformed'}),
                                   ('exp -1e20', {'exp': -1e20}, {'auth-malformed', 'auth-expired'}),
                                   ('exp -2^63 - 1', {'exp': -2 ** 63 - 1}, {'auth-malformed', 'auth-expired'}),
                                   ('nbf 1e20', {'nbf': 1e20}, {'auth-malformed', 'auth-not-yet-valid'}),
                                   ('nbf -1e20', {'nbf': -1e20}, {'auth-malformed'}),
                                   ('exp with a fraction', {'exp': time.time() + 3600.5}, set())):
            with self.subTest(what):
                token = raw_token(hs, claims(me, **extra), 'HS256', key)
                got = await self.answers(token, me, peer)
                if got:
                    self.refused_tokens.append(token)
                    self.assertEqual(len(got), 1, '%s: %r' % (what, got))
                    self.assertError(got[0], codes or {'(accepted)'}, what)
                self.server.assert_alive()

    async def test_a_token_over_8192_bytes_is_auth_too_large(self):
        me = unique_id('me')
        token = sized_hs256(MAX_TOKEN + 1, me)
        self.assertEqual(len(token), MAX_TOKEN + 1)
        await self.assertRefused(token, 'auth-too-large', me, what='a valid token of 8193 bytes')
        await self.assertRefused('x' * 20000, 'auth-too-large', me, what='20000 bytes of x')
        await self.assertRefused('.'.join(['a' * 4000] * 3), 'auth-too-large', me, what='three long parts')

    async def test_after_refusals_the_server_still_takes_good_tokens(self):
        me = unique_id('me')
        await self.assertRefused(flip_signature(py_token('RS256', claims(me))), 'auth-bad-signature', me)
        await self.assertRefused('abc', 'auth-malformed', me)
        # The refused opens left nothing behind: me can open now.
        a_id = unique_id('a')
        await self.assertPairs(py_token('RS256', claims(me, a_id)), me, py_token('ES256', claims(a_id, me)), a_id,
                               what='after refusals')


class MetricsTest(JwtServerCase):
    """The counters: one for accepted tokens, one per refusal."""

    async def test_accepted_and_refused_tokens_are_counted_by_reason(self):
        before = await asyncio.to_thread(scrape, self.server)
        cases = self.refusal_catalogue()
        self.assertEqual({c[2] for c in cases}, set(REFUSALS))
        for what, token, code, me, peer in cases:
            await self.assertRefused(token, code, me, peer, what=what)
        # Two accepted: a JWT by each library.
        for token_of in (lambda i: py_token('RS256', claims(i)), lambda i: jose_token('HS256', claims(i))):
            me = unique_id('me')
            await self.assertAccepted(token_of(me), me)
        after = await asyncio.to_thread(scrape, self.server)
        auth_lines = '\n'.join(l for l in after.text.splitlines() if 'duet_auth' in l)
        for name, delta in [(ACCEPTED_METRIC, 2)] + [(refused_metric(c), 1) for c in REFUSALS]:
            with self.subTest(name):
                self.assertEqual(after.types.get(name), 'counter', '%s is not a counter in /metrics; its '
                                 'auth lines:\n%s' % (name, auth_lines))
                self.assertEqual(counter(after, name) - counter(before, name), delta, name)

    async def test_a_refusal_counts_under_its_own_reason_only(self):
        me = unique_id('me')
        token = py_token('HS256', claims(me, exp=int(time.time()) - 3600))
        before = await asyncio.to_thread(scrape, self.server)
        for _ in range(3):
            await self.assertRefused(token, 'auth-expired', me)
        after = await asyncio.to_thread(scrape, self.server)
        for code in REFUSALS:
            name = refused_metric(code)
            delta = counter(after, name) - counter(before, name)
            self.assertEqual(delta, 3 if code == 'auth-expired' else 0, name)
        self.assertEqual(counter(after, ACCEPTED_METRIC), counter(before, ACCEPTED_METRIC), ACCEPTED_METRIC)


class LogTest(JwtCase):
    """A refused token never reaches duetd's log, even at --log-level debug."""

    async def test_no_refused_token_is_logged(self):
        tmp = tempfile.mkdtemp(prefix='duet-jwt-log-')
        self.addCleanup(shutil.rmtree, tmp, True)
        srv = Server(extra_args=main_server_args(tmp, ['--log-level', 'debug']))
        srv.__enter__()
        try:
            cases = self.refusal_catalogue()
            for what, token, code, me, peer in cases:
                await self.assertRefused(token, code, me, peer, server=srv, what=what)
            # one accepted too, so the log has something of the kind to say
            me = unique_id('me')
            await self.assertAccepted(py_token('ES256', claims(me)), me, server=srv)
        finally:
            log = stop_and_log(srv)
        for what, token, code, _, _ in cases:
            if token is None:
                continue
            with self.subTest(what):
                self.assertNotIn(token, log, '%s: the refused token is in the log' % what)
                parts = token.split('.')
                if len(parts) == 3 and len(parts[2]) >= 16:
                    self.assertNotIn(parts[2], log, '%s: the refused token\'s signature is in the log' % what)
                if len(parts) == 3 and len(parts[1]) >= 24:
                    self.assertNotIn(parts[1], log, '%s: the refused token\'s payload is in the log' % what)


# ---------------------------------------------------------------------------
# Other configurations
# ---------------------------------------------------------------------------

class JwksOnlyTest(JwtServerCase):
    """--auth-jwks without a secret: tokens are required, HS256 is not taken."""

    @classmethod
    def server_args(cls, tmp):
        jwks_file = os.path.join(tmp, 'keys.json')
        write_json(jwks_file, Keys.jwks())
        return ['--auth-jwks', jwks_file, '--auth-audience', AUDIENCE, '--max-connections-per-ip', '1000']

    async def test_an_open_without_a_token_is_auth_missing(self):
        await self.assertRefused(None, 'auth-missing')

    async def test_rs256_es256_and_eddsa_pair(self):
        # No issuer configured: a token without one passes, and so does one with any.
        for alg, lib in (('RS256', 'jose'), ('ES256', 'pyjwt'), ('EdDSA', 'jose')):
            with self.subTest(alg=alg):
                a_id, b_id = unique_id('a'), unique_id('b')
                if lib == 'pyjwt':
                    ta = py_token(alg, claims(a_id, b_id, iss=_DROP))
                    tb = py_token(alg, claims(b_id, aud=['x', AUDIENCE], iss='whoever'))
                else:
                    ta, tb = jose_tokens([(alg, claims(a_id, b_id, iss=_DROP)),
                                          (alg, claims(b_id, aud=['x', AUDIENCE], iss='y'))])
                await self.assertPairs(ta, a_id, tb, b_id, what='%s by %s' % (alg, lib))

    async def test_hs256_is_auth_alg_refused_without_a_secret(self):
        me = unique_id('me')
        c = claims(me)
        await self.assertRefused(py_token('HS256', c), 'auth-alg-refused', me, what='HS256 by PyJWT')
        await self.assertRefused(jose_token('HS256', c), 'auth-alg-refused', me, what='HS256 by jose')
        await self.assertRefused(py_token('HS256', c, kid='rsa-1'), 'auth-alg-refused', me, what='HS256 kid rsa-1')

    async def test_the_rsa_public_key_as_an_hs256_secret_is_refused(self):
        me = unique_id('me')
        for kid, key in (('rsa-1', Keys.rsa), ('rsa-2', Keys.rsa_noalg)):
            pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
            for form, secret in (('PEM', pem), ('n', b64url_decode(public_jwk(key, kid)['n']))):
                with self.subTest(kid=kid, form=form):
                    token = raw_token({'alg': 'HS256', 'kid': kid}, claims(me), 'HS256', secret)
                    await self.assertRefused(token, 'auth-alg-refused', me,
                                             what='HS256 with the %s of %s' % (form, kid))

    async def test_alg_none_and_unknown_kids_are_refused(self):
        me = unique_id('me')
        await self.assertRefused(raw_token({'alg': 'none'}, claims(me)), 'auth-alg-refused', me)
        await self.assertRefused(py_token('ES256', claims(me), kid='nope'), 'auth-unknown-kid', me)
        await self.assertRefused(py_token('ES256', claims(me), kid=False), 'auth-unknown-kid', me)


class ProviderJwksTest(JwtServerCase):
    """An identity provider's JWKS also lists keys for encryption and for
    algorithms duetd does not take: skipped (and said at start), the rest
    used."""

    @classmethod
    def server_args(cls, tmp):
        jwks_file = os.path.join(tmp, 'keys.json')
        extra = [dict(public_jwk(Keys.other_rsa, 'enc-1'), use='enc', alg='RSA-OAEP'),
                 public_jwk(Keys.other_rsa, 'rsa-384', 'RS384')]
        write_json(jwks_file, {'keys': extra + Keys.jwks()['keys']})
        return ['--auth-jwks', jwks_file, '--auth-audience', AUDIENCE, '--max-connections-per-ip', '1000']

    async def test_the_other_keys_are_skipped_and_said_and_the_signing_keys_work(self):
        self.assertIn('4 key(s); skipped: kid "enc-1" (use enc), kid "rsa-384" (RS384)', self.server.log())
        a_id, b_id = unique_id('a'), unique_id('b')
        await self.assertPairs(py_token('ES256', claims(a_id, b_id)), a_id,
                               jose_token('RS256', claims(b_id)), b_id, what='ES256 and RS256')
        await self.assertRefused(py_token('RS256', claims(a_id), key=Keys.other_rsa, kid='rsa-384'),
                                 'auth-unknown-kid', a_id, what='a skipped key signs nothing')
        # An identity provider's token for another app: its aud is not ours.
        await self.assertRefused(py_token('ES256', claims(a_id, aud='another-app')), 'auth-wrong-audience', a_id,
                                 what='a token for another audience')


class OptionsTest(JwtServerCase):
    """A secret with whitespace after it, auth.clock-skew=600 and
    auth.legacy-tokens=off, the audience; no JWKS or issuer."""

    @classmethod
    def server_args(cls, tmp):
        cls.secret_file = os.path.join(tmp, 'secret')
        with open(cls.secret_file, 'w') as f:
            f.write(SECRET + ' \t\r\n\n')
        return ['--auth-secret', cls.secret_file, '--auth-audience', AUDIENCE, '--plugin-opt', 'auth.clock-skew=600',
                '--plugin-opt', 'auth.legacy-tokens=off', '--max-connections-per-ip', '1000']

    async def test_the_secret_is_the_file_trimmed_and_jwts_pair(self):
        await self.pair_with('HS256', 'pyjwt')
        await self.pair_with('HS256', 'jose')

    async def test_only_whitespace_after_the_secret_is_trimmed(self):
        # duetd's rule for every secret file: the newline (and spaces) an
        # editor or echo leaves at the end go; anything before is the secret.
        tmp = tempfile.mkdtemp(prefix='duet-jwt-secret-')
        self.addCleanup(shutil.rmtree, tmp, True)
        secret_file = os.path.join(tmp, 'secret')
        with open(secret_file, 'w') as f:
            f.write('  ' + SECRET + '  \r\n')
        with Server(extra_args=['--auth-secret', secret_file]) as srv:
            me = unique_id('me')
            await self.assertAccepted(py_token('HS256', claims(me, aud=_DROP, iss=_DROP), key='  ' + SECRET), me,
                                      server=srv, what='HS256 signed with the secret and the spaces before it')
            await self.assertRefused(py_token('HS256', claims(me, aud=_DROP, iss=_DROP)), 'auth-bad-signature', me,
                                     server=srv, what='HS256 signed without the spaces before the secret')

    async def test_the_clock_skew_option_widens_exp_and_nbf(self):
        now = int(time.time())
        me = unique_id('me')
        await self.assertAccepted(py_token('HS256', claims(me, exp=now - 300)), me, what='exp 5 min ago')
        await self.assertAccepted(jose_token('HS256', claims(me, nbf=now + 300)), me, what='nbf in 5 min')
        await self.assertRefused(py_token('HS256', claims(me, exp=now - 1200)), 'auth-expired', me,
                                 what='exp 20 min ago')
        await self.assertRefused(jose_token('HS256', claims(me, nbf=now + 1200)), 'auth-not-yet-valid', me,
                                 what='nbf in 20 min')

    async def test_legacy_v1_tokens_are_refused_when_turned_off(self):
        me = unique_id('me')
        err = await self.assertRefused(mint_v1(SECRET, me), set(REFUSALS) | {'auth-invalid', 'auth-legacy-refused'},
                                       me, what='v1 token, legacy-tokens=off')
        self.assertNotEqual(err['code'], 'auth-missing')

    async def test_asymmetric_algorithms_are_refused_without_a_jwks(self):
        me = unique_id('me')
        for alg in ('RS256', 'ES256', 'EdDSA'):
            with self.subTest(alg=alg):
                await self.assertRefused(py_token(alg, claims(me)), 'auth-alg-refused', me, what=alg)
                await self.assertRefused(py_token(alg, claims(me), kid=False), 'auth-alg-refused', me,
                                         what=alg + ' without kid')

    async def test_a_token_from_duetd_token_pairs(self):
        a_id, b_id = unique_id('a'), unique_id('b')
        tokens = []
        for args in (['--id', a_id, '--peer', b_id], ['--id', b_id]):
            proc = await asyncio.to_thread(run_duetd, ['token', '--auth-secret', self.secret_file, '--ttl', '1h',
                                                       '--audience', AUDIENCE] + args)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            tokens.append(proc.stdout.strip())
            self.assertEqual(jwt.get_unverified_header(tokens[-1])['alg'], 'HS256')
        await self.assertPairs(tokens[0], a_id, tokens[1], b_id, what='duetd token')


class ZeroSkewTest(JwtCase):

    async def test_with_no_clock_skew_a_token_just_expired_is_refused(self):
        tmp = tempfile.mkdtemp(prefix='duet-jwt-skew-')
        self.addCleanup(shutil.rmtree, tmp, True)
        secret_file = os.path.join(tmp, 'secret')
        with open(secret_file, 'w') as f:
            f.write(SECRET)
        with Server(extra_args=['--auth-secret', secret_file, '--auth-audience', AUDIENCE,
                                '--plugin-opt', 'auth.clock-skew=0']) as srv:
            me = unique_id('me')
            now = int(time.time())
            # Time only goes forward: these are out of range however slow the machine.
            await self.assertRefused(py_token('HS256', claims(me, exp=now - 5)), 'auth-expired', me, server=srv)
            await self.assertRefused(py_token('HS256', claims(me, exp=now - 1)), 'auth-expired', me, server=srv)
            await self.assertAccepted(py_token('HS256', claims(me, nbf=now - 1)), me, server=srv)


class JwksReloadTest(JwtCase):
    """The JWKS is re-read on SIGHUP; a file that does not parse keeps the
    old keys and says so in the log."""

    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.tmp = tempfile.mkdtemp(prefix='duet-jwt-hup-')
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.jwks_file = os.path.join(self.tmp, 'keys.json')
        self.first = public_jwk(Keys.ec, 'ec-1', 'ES256')
        self.later = public_jwk(Keys.later, 'ec-later')
        write_json(self.jwks_file, {'keys': [self.first]})
        self.srv = Server(extra_args=['--auth-jwks', self.jwks_file, '--auth-audience', AUDIENCE])
        self.srv.__enter__()
        self.addCleanup(stop_and_log, self.srv)

    def current_server(self):
        return self.srv

    def first_token(self, me):
        return py_token('ES256', claims(me), key=Keys.ec, kid='ec-1')

    def later_token(self, me):
        return jose_token('ES256', claims(me), Keys.later, 'ec-later')

    async def hup(self):
        """SIGHUP, and waits until duetd has handled it: its "SIGHUP"
        line is logged in the same turn of its loop that tells the plugins,
        so a message read after the line sees what the plugins did."""
        marker = 'SIGHUP: telling plugins'
        seen = self.srv.log().count(marker)
        mark = len(self.srv.log())
        self.srv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + WAIT
        while self.srv.log().count(marker) <= seen:
            self.srv.assert_alive()
            if time.monotonic() > deadline:
                self.fail('duetd did not log %r within %.0f s of SIGHUP:\n%s' % (marker, WAIT, self.srv.log()[-3000:]))
            await asyncio.sleep(0.05)
        return mark

    async def until(self, token_of, accepted, what):
        """Opens with token_of(new id) until the open is accepted (accepted=True)
        or refused with auth-unknown-kid (False), within WAIT."""
        deadline = time.monotonic() + WAIT
        while True:
            me = unique_id('me')
            got = await self.answers(token_of(me), me, unique_id('peer'))
            if accepted and got == []:
                return
            if not accepted and got and got[0].get('error', {}).get('code') == 'auth-unknown-kid':
                return
            if time.monotonic() > deadline:
                self.fail('%s: still %r %.0f s after SIGHUP' % (what, got, WAIT))
            await asyncio.sleep(0.05)

    async def test_a_key_added_to_the_file_is_taken_after_sighup(self):
        me = unique_id('me')
        await self.assertAccepted(self.first_token(me), me)
        await self.assertRefused(self.later_token(me), 'auth-unknown-kid', me, what='before the key is added')
        write_json(self.jwks_file, {'keys': [self.first, self.later]})
        await self.hup()
        await self.until(self.later_token, True, 'the key added before SIGHUP')
        me = unique_id('me')
        await self.assertAccepted(self.first_token(me), me, what='the first key after the reload')

    async def test_a_key_removed_from_the_file_is_refused_after_sighup(self):
        write_json(self.jwks_file, {'keys': [self.first, self.later]})
        await self.hup()
        await self.until(self.later_token, True, 'the added key')
        write_json(self.jwks_file, {'keys': [self.later]})
        await self.hup()
        await self.until(self.first_token, False, 'the removed key')
        me = unique_id('me')
        await self.assertAccepted(self.later_token(me), me, what='the key kept')

    async def test_a_key_taken_out_is_out_even_when_the_new_file_is_refused(self):
        # The operator removes a leaked key and, in the same edit, adds one
        # duetd refuses (a 1024-bit RSA key): the file is not taken, but the
        # removed key no longer opens anything.
        write_json(self.jwks_file, {'keys': [self.first, self.later]})
        await self.hup()
        await self.until(self.later_token, True, 'the added key')
        short = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        write_json(self.jwks_file, {'keys': [self.later, public_jwk(short, 'too-short', 'RS256')]})
        mark = await self.hup()
        await self.until(self.first_token, False, 'the key taken out')
        me = unique_id('me')
        await self.assertAccepted(self.later_token(me), me, what='the key still listed')
        self.assertIn('not reloaded, the old keys stay but the 1 it no longer lists', self.srv.log()[mark:])

    async def test_a_file_that_does_not_parse_keeps_the_old_keys(self):
        write_json(self.jwks_file, {'keys': [self.first, self.later]})
        await self.hup()
        await self.until(self.later_token, True, 'the added key')
        for what, text in (('half a file', '{"keys": [%s' % json.dumps(self.first)),
                           ('not JSON', 'this is not a key set\n'),
                           ('no keys member', '{"kees": []}'),
                           ('an empty file', '')):
            with self.subTest(what):
                with open(self.jwks_file + '.tmp', 'w') as f:
                    f.write(text)
                os.replace(self.jwks_file + '.tmp', self.jwks_file)
                mark = await self.hup()
                # The plugin says so: a new line that names the JWKS or its file.
                pattern = re.compile(r'(?i)jwks|key set|' + re.escape(self.jwks_file))
                deadline = time.monotonic() + WAIT
                while not pattern.search(self.srv.log()[mark:]):
                    if time.monotonic() > deadline:
                        self.fail('%s: no log line about the JWKS after SIGHUP:\n%s' % (what, self.srv.log()[mark:]))
                    await asyncio.sleep(0.05)
                me = unique_id('me')
                await self.assertAccepted(self.first_token(me), me, what='%s: the first key' % what)
                me = unique_id('me')
                await self.assertAccepted(self.later_token(me), me, what='%s: the added key' % what)
                self.srv.assert_alive()


class StartTest(unittest.TestCase):

    def test_a_jwks_that_does_not_parse_stops_duetd_at_start(self):
        tmp = tempfile.mkdtemp(prefix='duet-jwt-start-')
        self.addCleanup(shutil.rmtree, tmp, True)
        bad = os.path.join(tmp, 'keys.json')
        with open(bad, 'w') as f:
            f.write('{"keys": [')
        proc = run_duetd(['--address', '127.0.0.1', '--port', '0', '--state-dir', os.path.join(tmp, 'state'),
                          '--web-root', tmp, '--auth-jwks', bad])
        self.assertNotEqual(proc.returncode, 0, proc.stderr)
        self.assertNotIn('listening on', proc.stderr)

    def start(self, jwks, extra):
        tmp = tempfile.mkdtemp(prefix='duet-jwt-start-')
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, 'keys.json')
        write_json(path, jwks)
        return run_duetd(['--address', '127.0.0.1', '--port', '0', '--state-dir', os.path.join(tmp, 'state'),
                          '--web-root', tmp, '--auth-jwks', path] + extra)

    def test_a_jwks_needs_an_audience(self):
        # Keys from a JWKS may sign for other apps: only tokens for ours count.
        proc = self.start(Keys.jwks(), [])
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn('--auth-audience', proc.stderr)

    def test_an_rsa_key_with_e_1_stops_duetd_at_start(self):
        # With e = 1 a signature is the padded message itself: anyone could sign.
        weak = dict(public_jwk(Keys.rsa, 'weak', 'RS256'), e=b64url_uint(1))
        proc = self.start({'keys': [weak]}, ['--auth-audience', AUDIENCE])
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("public key check", proc.stderr)


if __name__ == '__main__':
    unittest.main()
