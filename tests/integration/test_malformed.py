"""Everything a client can get wrong: duetd answers with an error, keeps the
connection open, and goes on serving new pairs.

Run: DUETD=build/core/duetd /usr/bin/python3 tests/integration/test_malformed.py
"""

import unittest

from duet_harness import Closed, unique_id, SharedServerTestCase

OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CONT = 0x0

DEFAULT_MAX = 65536


class MalformedCase(SharedServerTestCase):
    server_args = []

    async def assert_refused(self, client, code, what):
        """The next message is the error; the connection is still usable."""
        self.assertError(await client.recv_json(), code, what)
        self.assertEqual(await client.ping_pong(), {'pong': 1},
                         'connection unusable after %s' % what)

    async def send_and_expect(self, text, code, what=None):
        c = await self.connect('bad')
        await c.send_text(text)
        await self.assert_refused(c, code, what or repr(text[:80]))
        await c.close()


class MalformedJsonTest(MalformedCase):

    async def test_invalid_json_is_answered_with_malformed(self):
        for text in ['not json', '{"open":', '{"open":{"local":"a","remote":"b"}',
                     "{'ping':1}", '{"ping":1,}', '{"ping":1}}', '{"ping" 1}',
                     '{"ping":01}', '{"ping":1} x', '\x00', 'nul', '{"a":"\\x"}',
                     '{"a":"unterminated}']:
            await self.send_and_expect(text, 'malformed')
        await self.assert_server_still_pairs()

    async def test_json_that_is_not_an_object_is_answered_with_malformed(self):
        for text in ['[1]', '"x"', '{}', '42', 'null', 'true', '[]', '[{"ping":1}]', ' ', '']:
            await self.send_and_expect(text, 'malformed')
        await self.assert_server_still_pairs()

    async def test_invalid_utf8_in_a_text_frame_is_refused_without_harm(self):
        for payload in [b'\xff\xfe', b'{"ping":"\xc3\x28"}', b'{"ping":"\xed\xa0\x80"}',
                        b'{"ping":"\xf8\x88\x80\x80\x80"}', b'{"a":"\xe2\x82"}']:
            c = await self.connect('utf8')
            await c.send_raw_frame(OP_TEXT, payload)
            try:
                msg = await c.recv_json()
            except Closed as e:
                # RFC 6455 7.4.1: 1007 = inconsistent data (invalid UTF-8).
                self.assertEqual(e.code, 1007, 'payload %r: closed with a code other than 1007'
                                 % payload)
            else:
                self.assertError(msg, 'malformed', 'payload %r' % payload)
                self.assertEqual(await c.ping_pong(), {'pong': 1})
            await c.close()
        await self.assert_server_still_pairs()

    async def test_binary_frames_are_answered_with_binary_unsupported(self):
        c = await self.connect('bin')
        await c.ws.send(b'{"ping":1}')
        await self.assert_refused(c, 'binary-unsupported', 'binary frame')
        await c.ws.send(b'\x00\x01\x02')
        await self.assert_refused(c, 'binary-unsupported', 'binary junk')
        # A fragmented binary message too.
        await c.send_fragments([b'{"pi', b'ng":1}'])
        await self.assert_refused(c, 'binary-unsupported', 'fragmented binary frame')
        await self.assert_server_still_pairs()

    async def test_unknown_message_types_are_answered_with_unknown_type(self):
        for text in ['{"foo":1}', '{"Open":{"local":"a","remote":"b"}}', '{"remote":"x"}',
                     '{"bar":{"sdp":1},"remote":"x"}']:
            if text == '{"remote":"x"}':
                # An object with no member other than remote has no type at all.
                c = await self.connect('no-type')
                await c.send_text(text)
                self.assertError(await c.recv_json(), {'unknown-type', 'malformed', 'bad-request'})
                await c.close()
                continue
            await self.send_and_expect(text, 'unknown-type')
        await self.assert_server_still_pairs()


class BadRequestTest(MalformedCase):

    async def test_open_without_string_ids_is_a_bad_request(self):
        for msg in ['{"open":{}}', '{"open":{"local":"a"}}', '{"open":{"remote":"b"}}',
                    '{"open":{"local":1,"remote":"b"}}', '{"open":{"local":"a","remote":null}}',
                    '{"open":{"local":["a"],"remote":"b"}}', '{"open":{"local":"a","remote":{}}}',
                    '{"open":1}', '{"open":"a"}', '{"open":null}']:
            await self.send_and_expect(msg, 'bad-request')
        await self.assert_server_still_pairs()

    async def test_empty_ids_are_a_bad_request(self):
        await self.send_and_expect('{"open":{"local":"","remote":"b"}}', 'bad-request')
        await self.send_and_expect('{"open":{"local":"a","remote":""}}', 'bad-request')
        await self.assert_server_still_pairs()

    async def test_ids_over_256_bytes_are_a_bad_request(self):
        # Counted in bytes: 128 x "e-acute" is 256 bytes (fine), one more is 257.
        long_local = '\u00e9' * 128 + 'x'
        self.assertEqual(len(long_local.encode()), 257)
        await self.send_and_expect('{"open":{"local":"%s","remote":"b"}}' % long_local,
                                   'bad-request', '257-byte local id')
        await self.send_and_expect('{"open":{"local":"a","remote":"%s"}}' % ('r' * 257),
                                   'bad-request', '257-byte remote id')
        await self.send_and_expect('{"open":{"local":"a","remote":"%s"}}' % ('r' * 5000),
                                   'bad-request', '5000-byte remote id')
        await self.assert_server_still_pairs()

    async def test_ids_of_exactly_256_bytes_are_accepted(self):
        x = '\u00e9' * 120 + unique_id('x')
        x = x + 'a' * (256 - len(x.encode()))
        y = unique_id('y')
        y = y + 'b' * (256 - len(y))
        self.assertEqual(len(x.encode()), 256)
        self.assertEqual(len(y.encode()), 256)
        await self.pair(x, y)

    async def test_open_where_local_equals_remote_is_a_bad_request(self):
        me = unique_id('me')
        await self.send_and_expect('{"open":{"local":"%s","remote":"%s"}}' % (me, me),
                                   'bad-request')
        await self.assert_server_still_pairs()

    async def test_sdp_and_ice_without_a_string_remote_are_a_bad_request(self):
        a, b = await self.pair()
        for msg in ['{"sdp":{"type":"offer","sdp":"x"}}', '{"ice":{"candidate":"x"}}',
                    '{"sdp":{"type":"offer"},"remote":1}', '{"ice":{},"remote":null}',
                    '{"ice":{},"remote":["%s"]}' % b.name]:
            await a.send_text(msg)
            await self.assert_refused(a, 'bad-request', msg)
        await b.expect_nothing(0.2)
        await self.assert_server_still_pairs()

    async def test_a_failed_open_leaves_the_socket_free_to_open_properly(self):
        alice, bob = unique_id('alice'), unique_id('bob')
        a = await self.connect('alice')
        await a.send_text('{"open":{"local":"%s"}}' % alice)
        self.assertError(await a.recv_json(), 'bad-request')
        await a.open(alice, bob)
        b = await self.connect('bob')
        await b.open(bob, alice)
        self.assertEqual(await a.recv_json(), {'start': 'answer'})
        self.assertEqual(await b.recv_json(), {'start': 'offer'})

    async def test_a_second_open_on_the_same_socket_is_answered_with_already_open(self):
        alice, bob = unique_id('alice'), unique_id('bob')
        a = await self.connect('alice')
        await a.open(alice, bob)
        await a.open(alice, bob)
        await self.assert_refused(a, 'already-open', 'same ids again')
        await a.open(unique_id('other'), unique_id('ids'))
        await self.assert_refused(a, 'already-open', 'different ids')
        # The first registration is untouched.
        b = await self.connect('bob')
        await b.open(bob, alice)
        self.assertEqual(await a.recv_json(), {'start': 'answer'})
        self.assertEqual(await b.recv_json(), {'start': 'offer'})
        await self.assert_server_still_pairs()

    async def test_sdp_and_ice_before_the_pair_started_are_answered_with_not_paired(self):
        alice, bob = unique_id('alice'), unique_id('bob')
        a = await self.connect('alice')
        # Before any open.
        await a.send_json({'sdp': {'type': 'offer', 'sdp': 'x'}, 'remote': bob})
        await self.assert_refused(a, 'not-paired', 'sdp before open')
        await a.open(alice, bob)
        # Registered, but bob is not there yet.
        await a.send_json({'sdp': {'type': 'offer', 'sdp': 'x'}, 'remote': bob})
        await self.assert_refused(a, 'not-paired', 'sdp while waiting')
        await a.send_json({'ice': {'candidate': 'x'}, 'remote': bob})
        await self.assert_refused(a, 'not-paired', 'ice while waiting')
        # Once bob arrives, the queued junk must not be delivered.
        b = await self.connect('bob')
        await b.open(bob, alice)
        self.assertEqual(await a.recv_json(), {'start': 'answer'})
        self.assertEqual(await b.recv_json(), {'start': 'offer'})
        await b.expect_nothing(0.3)
        await self.assert_server_still_pairs()

    async def test_sdp_naming_someone_other_than_the_partner_is_not_your_partner(self):
        a, b = await self.pair()
        c, d = await self.pair()
        await a.send_json({'sdp': {'type': 'offer', 'sdp': 'x'}, 'remote': d.name})
        await self.assert_refused(a, 'not-your-partner', 'a names d')
        await a.send_json({'ice': {'candidate': 'x'}, 'remote': a.name})
        await self.assert_refused(a, 'not-your-partner', 'a names itself')
        for cl in (b, c, d):
            await cl.expect_nothing(0.1)
        await self.assert_server_still_pairs()


class TooLargeTest(MalformedCase):

    async def test_a_message_over_the_default_limit_is_answered_with_too_large(self):
        c = await self.connect('big')
        text = '{"ping":1,"pad":"%s"}' % ('x' * (DEFAULT_MAX + 10))
        await c.send_text(text)
        await self.assert_refused(c, 'too-large', '%d-byte message' % len(text))
        await self.assert_server_still_pairs()

    async def test_a_message_of_exactly_the_limit_is_accepted(self):
        c = await self.connect('edge')
        text = '{"ping":1}'
        text = text + ' ' * (DEFAULT_MAX - len(text))
        self.assertEqual(len(text), DEFAULT_MAX)
        await c.send_text(text)
        self.assertEqual(await c.recv_json(), {'pong': 1})
        await c.send_text(text + ' ')
        await self.assert_refused(c, 'too-large', 'limit + 1 bytes')

    async def test_a_fragmented_message_over_the_limit_is_answered_with_too_large(self):
        c = await self.connect('frag')
        chunk = 'x' * 20000
        parts = ['{"ping":1,"pad":"'] + [chunk] * 5 + ['"}']
        await c.send_fragments(parts)
        await self.assert_refused(c, 'too-large', 'fragmented 100 kB message')
        # Many tiny fragments adding up past the limit are the same.
        parts = ['{"ping":1,"pad":"'] + ['y' * 1000] * 70 + ['"}']
        await c.send_fragments(parts)
        await self.assert_refused(c, 'too-large', '72 fragments, 70 kB')
        await self.assert_server_still_pairs()

    async def test_a_fragmented_message_under_the_limit_is_reassembled(self):
        a, b = await self.pair()
        text = '{"sdp":{"type":"offer","sdp":"%s"},"remote":"%s"}' % ('v' * 3000, a.name)
        parts = [text[i:i + 700] for i in range(0, len(text), 700)]
        await b.send_fragments(parts)
        self.assertEqual(await a.recv_text(), text)
        await b.send_fragments(['{"pi', 'ng"', ':1}'])
        self.assertEqual(await b.recv_json(), {'pong': 1})

    async def test_deep_nesting_over_the_limit_is_refused(self):
        c = await self.connect('deep')
        await c.send_text('[' * 100000)
        await self.assert_refused(c, {'malformed', 'too-large'}, '100000 [')
        await c.send_text('{"a":' + '[' * 100000 + ']' * 100000 + '}')
        await self.assert_refused(c, {'malformed', 'too-large'}, 'balanced 100000-deep')
        await self.assert_server_still_pairs()


class DeepNestingUnderRaisedLimitTest(MalformedCase):
    server_args = ['--max-message-bytes', '1000000']

    async def test_sixty_thousand_nesting_levels_are_answered_not_crashed_on(self):
        c = await self.connect('deep')
        for text, codes in [
                ('[' * 60000, {'malformed'}),
                ('{"a":' + '[' * 60000, {'malformed'}),
                ('{"a":' + '{"a":' * 60000 + '1' + '}' * 60001, {'malformed', 'unknown-type'}),
                ('{"foo":' + '[' * 60000 + ']' * 60000 + '}', {'malformed', 'unknown-type'}),
                ('{"ping":' + '[' * 60000 + ']' * 60000 + '}', {'malformed', 'bad-request', 'pong'}),
        ]:
            await c.send_text(text)
            msg = await c.recv_json()
            if 'pong' in codes and msg == {'pong': 1}:
                pass
            else:
                self.assertError(msg, codes - {'pong'}, 'nesting %r...' % text[:12])
            self.assertEqual(await c.ping_pong(), {'pong': 1})
        self.server.assert_alive()
        await self.assert_server_still_pairs()

    async def test_the_raised_limit_accepts_a_large_relayed_message(self):
        a, b = await self.pair()
        text = '{"sdp":{"type":"offer","sdp":"%s"},"remote":"%s"}' % ('s' * 500000, a.name)
        await b.send_text(text)
        self.assertEqual(await a.recv_text(), text)
        big = '{"ping":1,"pad":"%s"}' % ('z' * 1000000)
        await b.send_text(big)
        await self.assert_refused(b, 'too-large', 'over the raised limit')


if __name__ == '__main__':
    unittest.main()
