"""Hostile input over the WebSocket: bad JSON, bad types, bad ids, bad frames,
floods. Each case checks the answer (an error code, a close code), that the
server still pairs a fresh couple afterwards, and (at tearDownClass) that
duetd exits 0 on SIGTERM, which under ASan+UBSan means no sanitizer report.

Run: DUETD=build/core/duetd /usr/bin/python3 tests/hostile/test_hostile_ws.py
"""

import asyncio
import json
import os
import time
import unittest

from hostile_util import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, SLOW, RawWs,
                          SharedServerCase, WsClosed)

from duet_harness import Closed, Server, unique_id

# Protocol errors a server may answer a broken frame with (RFC 6455 7.4.1):
# 1002 protocol error, 1007 bad data, 1008 policy, 1009 too big.
FRAME_CLOSES = {1002, 1007, 1008, 1009}


def texts_json(texts):
    return [json.loads(t) for t in texts]


class JsonCase(SharedServerCase):
    # Plenty of messages per test: rate limiting has its own test below.
    server_args = ['--max-messages-per-second', '100000']

    async def expect_error(self, client, codes, what):
        got = await client.recv_json(timeout=5 * SLOW)
        self.assertError(got, codes, what)
        self.assertEqual(await client.ping_pong(timeout=5 * SLOW), {'pong': 1},
                         'connection unusable after %s' % what)

    async def refuse_all(self, messages, codes):
        c = await self.connect('hostile')
        for text in messages:
            await c.send_text(text)
            await self.expect_error(c, codes, repr(text[:80]))
        await c.close()


class MalformedJsonTest(JsonCase):

    async def test_every_truncation_of_an_open_is_malformed(self):
        full = '{"open":{"local":"%s","remote":"%s"}}' % (unique_id('a'), unique_id('b'))
        await self.refuse_all([full[:n] for n in range(1, len(full))], 'malformed')
        await self.assert_server_still_pairs()

    async def test_broken_json_of_many_kinds_is_malformed(self):
        await self.refuse_all([
            '{', '}', '{"open"}', '{"open":}', '{"open":{"local":"a",}}', '{,}', '{"a":1,,"b":2}',
            '{"open":{"local":"a" "remote":"b"}}', '{"open":{"local":\'a\',"remote":"b"}}',
            '{"ping":1}{"ping":1}', '{"ping":tru}', '{"ping":nul}', '{"ping":.5}',
            '{"ping":+1}', '{"ping":0x10}', '{"ping":NaN}', '{"ping":Infinity}', '{"ping":-}',
            '{"ping":1e}', '{"ping":"\\u12"}', '{"ping":"\\uZZZZ"}', '{"ping":"\\a"}',
            '{"ping":"tab\there"}', '{"ping":"nl\nhere"}', '{"ping":1 /* c */}',
            '{"ping":"\\ud800"}', '{"ping":"\\ud800\\u0041"}', '{"ping":"\\udbff\\udbff"}',
            '{"open":{"local":"\\ud83d","remote":"b"}}',
        ], 'malformed')
        await self.assert_server_still_pairs()

    async def test_deep_nesting_over_the_default_limit_is_too_large(self):
        c = await self.connect('deep')
        for text in ['[' * 100000, '{"a":' * 100000, '[' * 100000 + ']' * 100000,
                     '{"open":{"local":' + '[' * 100000 + ']' * 100000 + ',"remote":"b"}}']:
            await c.send_text(text)
            await self.expect_error(c, 'too-large', 'nesting of %d bytes' % len(text))
        await self.assert_server_still_pairs()

    async def test_deep_nesting_just_under_the_limit_is_answered(self):
        c = await self.connect('deep')
        for text, codes in [('[' * 65000, 'malformed'), ('{"a":' * 13000, 'malformed'),
                            ('{"x":' + '[' * 32000 + ']' * 32000 + '}', 'unknown-type'),
                            ('{"open":' + '[' * 32000 + ']' * 32000 + '}', 'bad-request')]:
            self.assertLessEqual(len(text), 65536)
            await c.send_text(text)
            await self.expect_error(c, codes, 'nesting %r...' % text[:10])
        await self.assert_server_still_pairs()

    async def test_huge_numbers_are_answered_not_crashed_on(self):
        c = await self.connect('numbers')
        for text in ['{"ping":1e999999}', '{"ping":-1e999999}', '{"ping":1e-999999}',
                     '{"ping":%s}' % ('9' * 400), '{"ping":-%s}' % ('9' * 400),
                     '{"ping":0.%s1}' % ('0' * 400), '{"ping":%s.5e-400}' % ('1' * 400),
                     '{"ping":18446744073709551616}', '{"ping":-9223372036854775809}',
                     '{"open":{"local":"a","remote":"b","n":1e999999}}',
                     '{"ping":%s}' % ('1' * 60000)]:
            await c.send_text(text)
            got = await c.recv_json(timeout=5 * SLOW)
            if got != {'pong': 1}:
                self.assertError(got, 'malformed', text[:60])
            self.assertEqual(await c.ping_pong(), {'pong': 1})
        await self.assert_server_still_pairs()

    async def test_huge_strings_are_relayed_or_refused_cleanly(self):
        a, b = await self.pair()
        big = '{"sdp":{"type":"offer","sdp":"%s"},"remote":"%s"}' % ('s' * 60000, a.name)
        await b.send_text(big)
        self.assertEqual(await a.recv_text(timeout=5 * SLOW), big)
        escaped = '{"ice":{"candidate":"%s"},"remote":"%s"}' % ('\\u00e9' * 10000, a.name)
        await b.send_text(escaped)
        self.assertEqual(await a.recv_text(timeout=5 * SLOW), escaped)
        await b.send_text('{"ping":1,"pad":"%s"}' % ('x' * 70000))
        await self.expect_error(b, 'too-large', '70 kB string')
        c = await self.connect('long-id')
        await c.send_text('{"open":{"local":"%s","remote":"b"}}' % ('\\u4e2d' * 10000))
        await self.expect_error(c, 'bad-request', '30 kB id')
        await self.assert_server_still_pairs()


class TrailingBytesTest(JsonCase):

    async def test_a_nul_byte_after_the_object_is_malformed(self):
        await self.refuse_all(['{"ping":1}\x00', '{"ping":1}\x00{"ping":2}', '{"ping":1} \x00 junk'],
                              'malformed')
        await self.assert_server_still_pairs()

    async def test_bytes_after_a_nul_are_never_relayed(self):
        a, b = await self.pair()
        text = '{"sdp":{"type":"offer","sdp":"v=0"},"remote":"%s"}\x00{"evil":1}' % a.name
        await b.send_text(text)
        self.assertError(await b.recv_json(), 'malformed')
        # The server relays a connection's messages in order: if it had
        # relayed the first one, the partner would get it before this one.
        after = '{"ice":{"candidate":"after"},"remote":"%s"}' % a.name
        await b.send_text(after)
        self.assertEqual(await a.recv_text(), after, 'the partner was sent the bytes after the NUL too')


class DeepNestingRaisedLimitTest(JsonCase):
    server_args = JsonCase.server_args + ['--max-message-bytes', '1000000']

    async def test_a_hundred_thousand_levels_are_answered_not_crashed_on(self):
        c = await self.connect('deep')
        for text, codes in [
                ('[' * 100000, {'malformed'}),
                ('{"a":' * 100000, {'malformed'}),
                ('[' * 100000 + ']' * 100000, {'malformed'}),
                ('{"x":' + '{"a":' * 100000 + '1' + '}' * 100001, {'unknown-type', 'malformed'}),
                ('{"open":' + '[' * 100000 + ']' * 100000 + '}', {'bad-request', 'malformed'}),
                ('{"open":{"local":"a","remote":"b","x":' + '[' * 100000 + ']' * 100000 + '}}',
                 None),
                ('{"sdp":' + '[' * 100000 + ']' * 100000 + ',"remote":"x"}', {'not-paired', 'malformed'}),
        ]:
            await c.send_text(text)
            if codes is None:
                # A valid open with a deep extra member: accepted (silently:
                # it waits for its peer) or refused; never a crash.
                await c.send_json({'ping': 1})
                got = await c.recv_json(timeout=10 * SLOW)
                if got != {'pong': 1}:
                    self.assertError(got, {'malformed', 'bad-request'})
                    self.assertEqual(await c.recv_json(), {'pong': 1})
                continue
            got = await c.recv_json(timeout=10 * SLOW)
            self.assertError(got, codes, 'nesting %r...' % text[:12])
            self.assertEqual(await c.ping_pong(timeout=5 * SLOW), {'pong': 1})
        await self.assert_server_still_pairs()


class IdsTest(JsonCase):

    async def test_nul_and_control_characters_in_ids_are_bad_requests(self):
        bad = ['\\u0000', 'a\\u0000', '\\u0000a', 'a\\u0001b', 'a\\u001fb', 'a\\u007fb', 'a\\u0080b',
               'a\\u009fb', 'a\\u0085', '\\r\\n', '\\t', '\\u001b[31m', 'a\\u0000' + 'b' * 300]
        msgs = []
        for x in bad:
            msgs.append('{"open":{"local":"%s","remote":"%s"}}' % (x, unique_id('r')))
            msgs.append('{"open":{"local":"%s","remote":"%s"}}' % (unique_id('l'), x))
        await self.refuse_all(msgs, 'bad-request')
        await self.assert_server_still_pairs()

    async def test_a_nul_in_an_id_cannot_reach_the_id_before_it(self):
        # "alice\u0000x" must not be treated as "alice" anywhere.
        alice, bob = unique_id('alice'), unique_id('bob')
        a = await self.connect('alice')
        await a.open(alice, bob)
        await a.synced()  # alice waits before bob's opens are read
        b = await self.connect('bob')
        await b.send_text('{"open":{"local":"%s","remote":"%s\\u0000x"}}' % (bob, alice))
        self.assertError(await b.recv_json(), 'bad-request')
        await a.expect_nothing(0.3)
        await b.open(bob, alice)
        self.assertEqual(await a.recv_json(), {'start': 'answer'})
        self.assertEqual(await b.recv_json(), {'start': 'offer'})
        # sdp naming the partner with a NUL suffix is not for the partner.
        await b.send_text('{"sdp":{},"remote":"%s\\u0000"}' % alice)
        self.assertError(await b.recv_json(), 'not-your-partner')
        await a.expect_nothing(0.3)

    async def test_lone_surrogate_escapes_in_ids_do_not_reach_the_audit_log_as_invalid_utf8(self):
        # "\udc00" is a lone low surrogate: no Unicode character. RapidJSON 1.1.0
        # decodes it to the bytes ED B0 80, which are not UTF-8.
        log = os.path.join(self.server._tmp, 'audit.jsonl')
        srv = Server(extra_args=['--audit-log', log])
        srv.__enter__()
        self.addCleanup(srv.__exit__, None, None, None)
        c = await self.connect('surrogate', server=srv)
        await c.send_text('{"open":{"local":"x\\udc00","remote":"%s"}}' % unique_id('r'))
        answers = await c.replies_before_pong()
        self.assertLessEqual(len(answers), 1, answers)
        answer = answers[0] if answers else None  # None: accepted silently (waiting for the peer)
        await c.close()
        deadline = time.monotonic() + 20 * SLOW
        data = b''
        while time.monotonic() < deadline:
            with open(log, 'rb') as f:
                data = f.read()
            if answer is not None or b'pairing.open' in data or b'"open"' in data:
                break
            await asyncio.sleep(0.1)
        try:
            data.decode('utf-8')
        except UnicodeDecodeError as e:
            self.fail('an id decoded from a lone surrogate escape reached the audit log as '
                      'invalid UTF-8 (%s); the open was answered %r; log: %r'
                      % (e, answer, data[-300:]))
        if answer is not None:
            self.assertError(answer, {'malformed', 'bad-request'})
        await self.assert_server_still_pairs(server=srv)


class WrongTypesTest(JsonCase):
    VALUES = ['null', '0', '-1.5', '1e999', 'true', 'false', '[]', '["a"]', '{}', '{"a":"b"}']

    async def test_wrong_types_for_local_remote_and_open_are_bad_requests(self):
        msgs = []
        for v in self.VALUES:
            msgs.append('{"open":%s}' % v)
            msgs.append('{"open":{"local":%s,"remote":"%s"}}' % (v, unique_id('r')))
            msgs.append('{"open":{"local":"%s","remote":%s}}' % (unique_id('l'), v))
            msgs.append('{"open":{"local":%s,"remote":%s}}' % (v, v))
        c = await self.connect('types')
        for text in msgs:
            await c.send_text(text)
            got = await c.recv_json(timeout=5 * SLOW)
            # 1e999 is not a double: the parser refuses it before the plugin sees it.
            self.assertError(got, 'malformed' if '1e999' in text else 'bad-request', text)
        await c.close()
        await self.assert_server_still_pairs()

    async def test_wrong_types_for_resume_do_not_break_open(self):
        for v in self.VALUES:
            if v == '1e999':
                continue
            local, remote = unique_id('l'), unique_id('r')
            a = await self.connect('resume-type')
            await a.send_text('{"open":{"local":"%s","remote":"%s","resume":%s}}' % (local, remote, v))
            # None: registered and waiting (resume of the wrong type is ignored).
            answers = await a.replies_before_pong()
            self.assertLessEqual(len(answers), 1, answers)
            if answers:
                self.assertError(answers[0], 'bad-request', 'resume %s' % v)
                await a.close()
                continue
            b = await self.connect('peer')
            await b.open(remote, local)
            self.assertIn(await a.recv_json(), ({'start': 'answer'},), 'resume %s' % v)
            self.assertIn(await b.recv_json(), ({'start': 'offer'},), 'resume %s' % v)
            await a.close()
            await b.close()
        await self.assert_server_still_pairs()

    async def test_wrong_types_for_remote_and_payload_of_sdp_and_ice(self):
        a, b = await self.pair()
        for kind in ('sdp', 'ice'):
            for v in self.VALUES:
                if v == '1e999':
                    continue
                text = '{"%s":{"x":1},"remote":%s}' % (kind, v)
                await b.send_text(text)
                self.assertError(await b.recv_json(), 'bad-request', text)
                # The payload's own type is not the server's business: forwarded whole.
                text = '{"%s":%s,"remote":"%s"}' % (kind, v, a.name)
                await b.send_text(text)
                self.assertEqual(await a.recv_text(), text)
        # A remote member inside the payload does not count.
        await b.send_text('{"sdp":{"remote":"%s"}}' % a.name)
        self.assertError(await b.recv_json(), 'bad-request')
        await a.expect_nothing(0.2)
        await self.assert_server_still_pairs()


class FramesTest(SharedServerCase):
    server_args = ['--max-messages-per-second', '100000']

    def raw(self):
        ws = RawWs(self.server)
        self.addCleanup(ws.close)
        return ws

    def assert_usable(self, ws):
        ws.send(OP_TEXT, '{"ping":1}')
        self.assertEqual(json.loads(ws.recv_text(5 * SLOW)), {'pong': 1})

    def assert_refused_frame(self, ws, what):
        texts, code, closed = ws.outcome(5 * SLOW)
        self.assertTrue(closed, '%s: the server neither closed nor answered (got %r)' % (what, texts))
        if code is not None:
            self.assertIn(code, FRAME_CLOSES, '%s: close code %s' % (what, code))

    async def test_binary_frames_are_refused(self):
        ws = self.raw()
        for payload in [b'{"ping":1}', b'\x00' * 10, os.urandom(3000)]:
            ws.send(OP_BINARY, payload)
            self.assertError(json.loads(ws.recv_text()), 'binary-unsupported')
        self.assert_usable(ws)
        await self.assert_server_still_pairs()

    async def test_many_tiny_fragments_are_reassembled(self):
        ws = self.raw()
        text = '{"ping":1,"pad":"%s"}' % ('\u00e9' * 1500)
        data = text.encode()
        # One byte per frame: multi-byte characters are split across frames.
        frames = [RawWs.frame(OP_TEXT if i == 0 else OP_CONT, data[i:i + 1], fin=i == len(data) - 1)
                  for i in range(len(data))]
        ws.send_raw(b''.join(frames))
        self.assertEqual(json.loads(ws.recv_text(10 * SLOW)), {'pong': 1})
        await self.assert_server_still_pairs()

    async def test_control_frames_between_fragments_are_answered(self):
        ws = self.raw()
        ws.send(OP_TEXT, '{"pi', fin=False)
        ws.send(OP_PING, b'between')
        op, payload = ws.recv_frame(5 * SLOW)
        self.assertEqual((op, payload), (OP_PONG, b'between'))
        ws.send(OP_CONT, 'ng"', fin=False)
        ws.send(OP_PONG, b'unsolicited')
        ws.send(OP_PING, b'')
        self.assertEqual(ws.recv_frame(5 * SLOW), (OP_PONG, b''))
        ws.send(OP_CONT, ':1}', fin=True)
        self.assertEqual(json.loads(ws.recv_text(5 * SLOW)), {'pong': 1})
        await self.assert_server_still_pairs()

    async def test_a_close_between_fragments_ends_the_connection_cleanly(self):
        ws = self.raw()
        ws.send(OP_TEXT, '{"ping"', fin=False)
        ws.send(OP_CLOSE, b'\x03\xe8bye')
        texts, code, closed = ws.outcome(5 * SLOW)
        self.assertTrue(closed)
        self.assertEqual(texts, [])
        await self.assert_server_still_pairs()

    async def test_protocol_violations_are_closed(self):
        cases = [
            ('continuation without a start', [dict(opcode=OP_CONT, payload='{"ping":1}')]),
            ('a new text frame inside a fragmented one',
             [dict(opcode=OP_TEXT, payload='{"pi', fin=False), dict(opcode=OP_TEXT, payload='ng":1}')]),
            ('binary continuation of text',
             [dict(opcode=OP_TEXT, payload='{"pi', fin=False), dict(opcode=OP_BINARY, payload='ng":1}')]),
            ('a fragmented ping', [dict(opcode=OP_PING, payload='x', fin=False)]),
            ('a ping of 126 bytes', [dict(opcode=OP_PING, payload='p' * 126)]),
            ('reserved bits set', [dict(opcode=OP_TEXT, payload='{"ping":1}', rsv=7)]),
            ('reserved opcode 3', [dict(opcode=0x3, payload='x')]),
            ('reserved control opcode 0xB', [dict(opcode=0xB, payload='x')]),
            ('an unmasked client frame', [dict(opcode=OP_TEXT, payload='{"ping":1}', mask=False)]),
            ('a close with a 1-byte payload', [dict(opcode=OP_CLOSE, payload=b'\x03')]),
            ('a close with invalid code 999', [dict(opcode=OP_CLOSE, payload=b'\x03\xe7')]),
            ('a close with invalid UTF-8 reason', [dict(opcode=OP_CLOSE, payload=b'\x03\xe8\xff\xfe')]),
        ]
        for what, frames in cases:
            ws = self.raw()
            for f in frames:
                ws.send(**f)
            texts, code, closed = ws.outcome(5 * SLOW)
            # Either refused (closed, maybe with an error first) or, for the
            # lenient cases, still usable: never silently stuck or crashed.
            if not closed:
                self.assert_usable(ws)
            elif code is not None:
                self.assertIn(code, FRAME_CLOSES | {1000, 1005}, '%s: close code %s' % (what, code))
            ws.close()
            self.server.assert_alive()
        await self.assert_server_still_pairs()

    async def test_invalid_utf8_in_text_frames_is_refused(self):
        for payload in [b'\xff', b'{"ping":"\xc0\xae"}', b'{"ping":"\xe0\x80\xaf"}', b'{"ping":"\xed\xa0\x80"}',
                        b'{"ping":"\xed\xbf\xbf"}', b'{"ping":"\xf4\x90\x80\x80"}', b'{"ping":"\xfe\xff"}',
                        b'{"ping":"\xc3"}', b'{"open":{"local":"\xc3\x28","remote":"b"}}']:
            ws = self.raw()
            ws.send(OP_TEXT, payload)
            try:
                got = json.loads(ws.recv_text(5 * SLOW))
            except WsClosed as e:
                self.assertEqual(e.code, 1007, 'payload %r' % payload)
            except EOFError:
                pass
            else:
                self.assertError(got, 'malformed', 'payload %r' % payload)
                self.assert_usable(ws)
            ws.close()
        # Invalid UTF-8 split over fragments, and a character cut at the end.
        ws = self.raw()
        ws.send(OP_TEXT, b'{"ping":"\xe2\x82', fin=False)
        ws.send(OP_CONT, b'"}', fin=True)
        try:
            got = json.loads(ws.recv_text(5 * SLOW))
            self.assertError(got, 'malformed')
        except (WsClosed, EOFError):
            pass
        await self.assert_server_still_pairs()

    async def test_a_frame_announcing_2_to_the_63_bytes_is_refused(self):
        for length in [1 << 63, (1 << 64) - 1]:
            ws = self.raw()
            ws.send(OP_TEXT, b'{"ping":1}', length=length)
            self.assert_refused_frame(ws, 'length %d' % length)
        await self.assert_server_still_pairs()

    async def test_a_frame_announcing_huge_lengths_does_not_grow_memory(self):
        # 2^63-1 is a legal length: the server must refuse it as too large
        # (close, or an error when it gives up) without buffering it.
        for length in [(1 << 63) - 1, 1 << 32, 70000]:
            ws = self.raw()
            ws.send(OP_TEXT, b'{"ping":1,"pad":"' + b'x' * 60000, length=length)
            # 16 kB more of it. The 70000-byte frame ends inside these bytes and
            # what is left is read as the next frame: an RSV bit in every byte
            # makes any header there a protocol error (a close), never a new
            # message with an answer of its own (random bytes were one in ~100).
            ws.send_raw(bytes(b | 0x70 for b in os.urandom(16)) * 1000)
            texts, code, closed = ws.outcome(2 * SLOW)
            if closed and code is not None:
                self.assertIn(code, FRAME_CLOSES, 'length %d' % length)
            for t in texts:
                self.assertError(json.loads(t), 'too-large')
            ws.close()
        await self.assert_server_still_pairs()
        self.server.assert_alive()


class FloodTest(SharedServerCase):
    """The default rate limit (50/s, bursts of 100)."""

    async def test_a_flood_of_opens_is_rate_limited_and_others_are_served(self):
        c = await self.connect('flood')
        local, remote = unique_id('f'), unique_id('g')
        text = '{"open":{"local":"%s","remote":"%s"}}' % (local, remote)
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < 1.5 and sent < 5000:
            await c.ws.send(text)
            sent += 1
        # Meanwhile a fresh pair is served promptly.
        t0 = time.monotonic()
        await self.assert_server_still_pairs()
        self.assertLess(time.monotonic() - t0, 3 * SLOW, 'pairing others took too long during a flood')
        # Every answer to the flood, however long the server takes to read
        # it: after a pause that refills the bucket, a ping is answered after
        # everything sent before it. (A ping read while the server still
        # works through the flood may be dropped by the rate limit: then the
        # next pause and ping.) After the pause, the flooder is served again.
        answers = []
        deadline = time.monotonic() + 60 * SLOW
        while True:
            self.assertLess(time.monotonic(), deadline, 'the flooder got no pong again; answers %r'
                            % [a.get('error', {}).get('code') for a in answers][:20])
            await asyncio.sleep(1.2)
            await c.send_json({'ping': 1})
            try:
                while True:
                    m = await c.recv_json(timeout=3 * SLOW)
                    if m == {'pong': 1}:
                        break
                    answers.append(m)
                break
            except Closed:
                raise
            except AssertionError:
                continue
        drained = time.monotonic() - started
        codes = [a.get('error', {}).get('code') for a in answers]
        self.assertIn('rate-limited', codes, 'sent %d opens in 1.5 s' % sent)
        # At most one rate-limited answer a second (the server took `drained`
        # seconds to get through the flood), and the rest answer the burst
        # and what the rate let through (already-open after the first open).
        self.assertLessEqual(codes.count('rate-limited'), int(drained) + 2, (drained, codes[:20]))
        self.assertLessEqual(len(answers), 100 + 50 * (int(drained) + 1) + 5, 'the flood was echoed back')
        self.assertTrue(set(codes) <= {'rate-limited', 'already-open', None}, set(codes))


class ManyConnectionsTest(SharedServerCase):
    """Thousands of WebSocket connections from one address (default cap 32)."""

    COUNT = 1200

    async def attempt(self, results):
        """One WebSocket; its first answer to a ping tells whether it is in
        (pong) or over the cap (too-many-connections, then close 1008)."""
        try:
            c = await self.connect('many', timeout=20 * SLOW)
        except Exception as e:  # refused at the HTTP/TLS level: fine
            results.append(('refused', repr(e)[:80]))
            return None
        try:
            await c.send_json({'ping': 1})
        except Exception:
            pass  # already closed by the server: its answer is still readable
        try:
            got = await c.recv_json(timeout=10 * SLOW)
        except Closed as e:
            results.append(('closed', e.code, None))
            return None
        if got == {'pong': 1}:
            results.append(('open',))
            return c
        try:
            code, _ = await c.expect_close(timeout=5 * SLOW)
            results.append(('closed', code, got))
        except AssertionError as e:
            results.append(('error-but-open', str(e)[:80], got))
        return None

    async def test_the_per_address_cap_answers_and_frees_up_after_close(self):
        results = []
        opened = []
        sem = asyncio.Semaphore(100)

        async def one():
            async with sem:
                c = await self.attempt(results)
                if c is not None:
                    opened.append(c)

        await asyncio.gather(*(one() for _ in range(self.COUNT)))
        kinds = {}
        for r in results:
            kinds[r[0]] = kinds.get(r[0], 0) + 1
        self.assertEqual(len(opened), 32, 'open WebSockets from one address: %r' % kinds)
        refused = [r for r in results if r[0] == 'closed']
        self.assertEqual(len(refused) + len(opened) + kinds.get('refused', 0), self.COUNT, kinds)
        for r in refused[:50]:
            self.assertEqual(r[1], 1008, r)
            if r[2] is not None:
                self.assertError(r[2], 'too-many-connections')
        # Those in are still served.
        self.assertEqual(await opened[0].ping_pong(), {'pong': 1})
        for c in opened:
            await c.close()
        # The address can connect again.
        deadline = time.monotonic() + 5 * SLOW
        while True:
            c = await self.connect('again')
            try:
                self.assertEqual(await c.ping_pong(), {'pong': 1})
                break
            except Closed:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        await c.close()
        await self.assert_server_still_pairs()


if __name__ == '__main__':
    unittest.main()
