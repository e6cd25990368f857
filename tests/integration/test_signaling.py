"""The v1 signaling protocol against a real duetd: pairing, relaying, keepalive,
re-pairing after a reconnect, and the takeover policies.

Run: DUETD=build/core/duetd /usr/bin/python3 tests/integration/test_signaling.py
"""

import json
import unittest

from duet_harness import unique_id, SharedServerTestCase
from test_resume import closed_count, closes_seen


class SharedServerCase(SharedServerTestCase):
    """One duetd per class; every test uses its own unique ids."""

    server_args = []


class TutorialFlowTest(SharedServerCase):

    async def test_mutual_requests_start_offer_and_answer(self):
        alice, bob = unique_id('alice'), unique_id('bob')
        a = await self.connect('alice')
        await a.open(alice, bob)
        await a.synced()  # alice is registered (and waits) before bob's open
        await a.expect_nothing(0.3)
        b = await self.connect('bob')
        await b.open(bob, alice)
        self.assertEqual(await a.recv_json(), {'start': 'answer'})
        self.assertEqual(await b.recv_json(), {'start': 'offer'})
        await a.expect_nothing(0.2)
        await b.expect_nothing(0.2)

    async def test_offer_answer_and_ice_are_relayed_to_the_partner_unchanged(self):
        a, b = await self.pair()
        # The newcomer (b) got "offer": it sends the SDP offer first, as the
        # tutorial client does; then the answer and candidates flow both ways.
        offer = {'sdp': {'type': 'offer', 'sdp': 'v=0\r\no=- 4611731400430051336 2 IN IP4 '
                         '127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n'}, 'remote': a.name}
        await b.send_json(offer)
        self.assertEqual(await a.recv_json(), offer)
        answer = {'sdp': {'type': 'answer', 'sdp': 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n'},
                  'remote': b.name}
        await a.send_json(answer)
        self.assertEqual(await b.recv_json(), answer)
        cand_a = {'ice': {'candidate': 'candidate:842163049 1 udp 1677729535 192.0.2.1 3478 typ '
                          'srflx raddr 0.0.0.0 rport 0 generation 0 ufrag EsAw',
                          'sdpMid': '0', 'sdpMLineIndex': 0}, 'remote': b.name}
        cand_b = {'ice': {'candidate': 'candidate:1 1 UDP 2122252543 198.51.100.7 50000 typ host',
                          'sdpMid': '0', 'sdpMLineIndex': 0, 'usernameFragment': None},
                  'remote': a.name}
        await a.send_json(cand_a)
        await b.send_json(cand_b)
        self.assertEqual(await b.recv_json(), cand_a)
        self.assertEqual(await a.recv_json(), cand_b)
        await a.expect_nothing(0.2)
        await b.expect_nothing(0.2)

    async def test_relayed_messages_are_byte_for_byte_what_the_sender_wrote(self):
        a, b = await self.pair()
        # Unusual spacing, member order, escapes, non-ASCII text, an escaped
        # surrogate pair, big and odd numbers, nested arrays and extra members
        # a v1 client would ignore: the partner must get exactly these bytes.
        texts = [
            '{"sdp":{"type":"offer","sdp":"v=0\\r\\n"},"remote":"%s"}' % a.name,
            '{ "remote" : "%s" ,\n\t"sdp" : { "sdp" : "v=0\\r\\na=x:\\"q\\"\\\\\\/" , "type" : "offer" } }'
            % a.name,
            '{"ice":{"candidate":"h\u00e9llo \U0001F389 \u65e5\u672c","sdpMid":"\\u00e9\\ud83c\\udf89",'
            '"sdpMLineIndex":12345678901234567890,"x":-1.5e-300,"y":[[],[{}],null,true,false],'
            '"z":"\\u0000\\b\\f\\n\\r\\t"},"remote":"%s","extra":{"unknown":"member"}}' % a.name,
        ]
        for text in texts:
            await b.send_text(text)
            got = await a.recv_text()
            self.assertEqual(json.loads(got), json.loads(text), 'relayed JSON differs')
            self.assertEqual(got, text, 'relayed bytes differ from what was sent')
        await b.expect_nothing(0.2)

    async def test_a_burst_arrives_complete_in_order_one_message_per_frame(self):
        # Sent without waiting, these queue up at the server, which sends
        # several per write: each must still arrive as its own message, whole,
        # in order. The sizes straddle every WebSocket length encoding
        # (7-bit, 16-bit, 64-bit) and the 16 KiB batch the server writes at once.
        a, b = await self.pair()
        sizes = [60, 125, 126, 127, 300, 4000, 16370, 16384, 16400, 30000, 65535, 65536]
        sizes += [60 + (i * 37) % 900 for i in range(60)]
        texts = []
        for i, size in enumerate(sizes):
            head = '{"ice":{"n":%d,"pad":"' % i
            tail = '"},"remote":"%s"}' % a.name
            texts.append(head + 'p' * (size - len(head) - len(tail)) + tail)
            self.assertEqual(len(texts[-1].encode()), size)
        for text in texts:
            await b.send_text(text)
        for i, text in enumerate(texts):
            got = await a.recv_text()
            self.assertEqual(len(got), len(text), 'message %d: length' % i)
            self.assertEqual(got, text, 'message %d differs' % i)
        await a.expect_nothing(0.2)
        await b.expect_nothing(0.2)

    async def test_the_waiting_peer_gets_nothing_until_its_partner_arrives(self):
        alice, bob = unique_id('alice'), unique_id('bob')
        a = await self.connect('alice')
        await a.open(alice, bob)
        # Someone else naming alice, but not as alice's wanted partner.
        c = await self.connect('carol')
        await c.open(unique_id('carol'), alice)
        await a.expect_nothing(0.3)
        await c.expect_nothing(0.1)

    async def test_one_sided_requests_do_not_start_a_pair(self):
        # A names B, B names C, C names A: nobody is mutual, nothing starts.
        ida, idb, idc = unique_id('a'), unique_id('b'), unique_id('c')
        a = await self.connect('a')
        b = await self.connect('b')
        c = await self.connect('c')
        await a.open(ida, idb)
        await b.open(idb, idc)
        await c.open(idc, ida)
        for cl in (a, b, c):
            await cl.expect_nothing(0.3)
        # And none of them may relay: they are not paired.
        await a.send_json({'sdp': {'type': 'offer', 'sdp': 'x'}, 'remote': idb})
        self.assertError(await a.recv_json(), 'not-paired')
        await b.expect_nothing(0.2)

    async def test_three_pairs_at_once_do_not_hear_each_other(self):
        pairs = []
        # Open all six first, interleaved, then check every start.
        ids = [(unique_id('p%da' % i), unique_id('p%db' % i)) for i in range(3)]
        firsts = []
        for i, (x, y) in enumerate(ids):
            c = await self.connect(x)
            await c.open(x, y)
            firsts.append(c)
        for c in firsts:
            await c.synced()  # the firsts wait before any second opens
        seconds = []
        for i, (x, y) in enumerate(ids):
            c = await self.connect(y)
            await c.open(y, x)
            seconds.append(c)
        for i in range(3):
            self.assertEqual(await firsts[i].recv_json(), {'start': 'answer'}, 'pair %d' % i)
            self.assertEqual(await seconds[i].recv_json(), {'start': 'offer'}, 'pair %d' % i)
            pairs.append((firsts[i], seconds[i]))
        # Everyone sends one message naming its partner, tagged with its own
        # identity; each must arrive only at that partner.
        for a, b in pairs:
            await a.send_json({'sdp': {'type': 'answer', 'sdp': 'from ' + a.name}, 'remote': b.name})
            await b.send_json({'ice': {'candidate': 'from ' + b.name}, 'remote': a.name})
        for a, b in pairs:
            self.assertEqual(await b.recv_json(),
                             {'sdp': {'type': 'answer', 'sdp': 'from ' + a.name}, 'remote': b.name})
            self.assertEqual(await a.recv_json(),
                             {'ice': {'candidate': 'from ' + b.name}, 'remote': a.name})
        for a, b in pairs:
            await a.expect_nothing(0.1)
            await b.expect_nothing(0.1)

    async def test_ping_is_answered_with_pong(self):
        c = await self.connect('lonely')
        self.assertEqual(await c.ping_pong(), {'pong': 1}, 'ping before open')
        await c.open(unique_id('x'), unique_id('y'))
        self.assertEqual(await c.ping_pong(), {'pong': 1}, 'ping after open')
        a, b = await self.pair()
        self.assertEqual(await a.ping_pong(), {'pong': 1}, 'ping while paired')
        await b.expect_nothing(0.2)

    async def test_pong_from_the_client_is_swallowed(self):
        a, b = await self.pair()
        await a.send_json({'pong': 1})
        await a.expect_nothing(0.3)
        await b.expect_nothing(0.1)
        # The connection still works afterwards.
        self.assertEqual(await a.ping_pong(), {'pong': 1})


class ThirdPartyTest(SharedServerCase):

    async def test_a_stranger_cannot_reach_a_paired_peer(self):
        a, b = await self.pair()
        c = await self.connect('carol')
        carol = unique_id('carol')
        await c.open(carol, b.name)
        await c.expect_nothing(0.2)
        await c.send_json({'sdp': {'type': 'offer', 'sdp': 'evil'}, 'remote': b.name})
        # carol is not paired at all; either refusal is acceptable, silence is not.
        self.assertError(await c.recv_json(), {'not-paired', 'not-your-partner'})
        await c.send_json({'ice': {'candidate': 'evil'}, 'remote': b.name})
        self.assertError(await c.recv_json(), {'not-paired', 'not-your-partner'})
        await b.expect_nothing(0.3)
        await a.expect_nothing(0.1)
        # A and B are unaffected.
        msg = {'ice': {'candidate': 'good'}, 'remote': b.name}
        await a.send_json(msg)
        self.assertEqual(await b.recv_json(), msg)

    async def test_a_peer_paired_elsewhere_cannot_relay_outside_its_pair(self):
        a, b = await self.pair()
        c, d = await self.pair()
        # c is paired with d and names b: not its partner.
        await c.send_json({'sdp': {'type': 'offer', 'sdp': 'evil'}, 'remote': b.name})
        self.assertError(await c.recv_json(), 'not-your-partner')
        await c.send_json({'ice': {'candidate': 'evil'}, 'remote': a.name})
        self.assertError(await c.recv_json(), 'not-your-partner')
        # a names an id nobody has.
        await a.send_json({'ice': {'candidate': 'x'}, 'remote': unique_id('ghost')})
        self.assertError(await a.recv_json(), 'not-your-partner')
        for cl in (a, b, d):
            await cl.expect_nothing(0.15)
        # Both pairs keep working.
        m1 = {'sdp': {'type': 'answer', 'sdp': 'ok'}, 'remote': b.name}
        await a.send_json(m1)
        self.assertEqual(await b.recv_json(), m1)
        m2 = {'ice': {'candidate': 'ok'}, 'remote': c.name}
        await d.send_json(m2)
        self.assertEqual(await c.recv_json(), m2)

    async def test_a_stranger_naming_a_paired_peer_does_not_disturb_the_pair(self):
        a, b = await self.pair()
        c = await self.connect('stranger')
        await c.open(unique_id('stranger'), a.name)
        await c.expect_nothing(0.3)
        await a.expect_nothing(0.1)
        await b.expect_nothing(0.1)
        await c.close()
        # The stranger leaving is not the partner leaving: no close for a.
        await a.expect_nothing(0.3)
        m = {'sdp': {'type': 'offer', 'sdp': 'still here'}, 'remote': a.name}
        await b.send_json(m)
        self.assertEqual(await a.recv_json(), m)


class ReconnectTest(SharedServerCase):

    async def test_partner_gets_close_when_the_other_side_disconnects(self):
        a, b = await self.pair()
        await b.close()
        self.assertEqual(await a.recv_json(), {'close': 1})
        await a.expect_nothing(0.2)
        # a is no longer paired: relaying is refused.
        await a.send_json({'ice': {'candidate': 'x'}, 'remote': b.name})
        self.assertError(await a.recv_json(), 'not-paired')

    async def test_the_pair_starts_again_when_the_other_side_reconnects(self):
        a, b = await self.pair()
        await b.close()
        self.assertEqual(await a.recv_json(), {'close': 1})
        # The tutorial client reconnects and sends the same open again.
        b2 = await self.connect(b.name)
        await b2.open(b.name, a.name)
        self.assertEqual(await a.recv_json(), {'start': 'answer'})
        self.assertEqual(await b2.recv_json(), {'start': 'offer'})
        m = {'sdp': {'type': 'offer', 'sdp': 'again'}, 'remote': a.name}
        await b2.send_json(m)
        self.assertEqual(await a.recv_json(), m)
        m2 = {'sdp': {'type': 'answer', 'sdp': 'back'}, 'remote': b.name}
        await a.send_json(m2)
        self.assertEqual(await b2.recv_json(), m2)

    async def test_the_waiting_side_can_also_be_the_one_that_reconnects(self):
        a, b = await self.pair()
        await a.close()
        self.assertEqual(await b.recv_json(), {'close': 1})
        a2 = await self.connect(a.name)
        await a2.open(a.name, b.name)
        # b stayed registered and was waiting: b answers, the newcomer offers.
        self.assertEqual(await b.recv_json(), {'start': 'answer'})
        self.assertEqual(await a2.recv_json(), {'start': 'offer'})

    async def test_pairs_restart_many_times(self):
        a, b = await self.pair()
        for i in range(5):
            await b.close()
            self.assertEqual(await a.recv_json(), {'close': 1}, 'round %d' % i)
            b = await self.connect(b.name)
            await b.open(b.name, a.name)
            self.assertEqual(await a.recv_json(), {'start': 'answer'}, 'round %d' % i)
            self.assertEqual(await b.recv_json(), {'start': 'offer'}, 'round %d' % i)

    async def test_a_waiting_peer_that_leaves_is_forgotten(self):
        alice, bob = unique_id('alice'), unique_id('bob')
        a = await self.connect('alice')
        await a.open(alice, bob)
        before = closed_count(self.server)
        await a.close()
        await closes_seen(self.server, before)
        b = await self.connect('bob')
        await b.open(bob, alice)
        await b.expect_nothing(0.4)

    async def test_closing_an_unpaired_connection_tells_nobody(self):
        a, b = await self.pair()
        x = await self.connect('x')
        await x.open(unique_id('x'), a.name)
        await x.close()
        await a.expect_nothing(0.3)
        await b.expect_nothing(0.1)


class TakeoverReplaceTest(SharedServerCase):
    """Default policy: pairing.takeover=replace."""

    async def test_a_second_open_with_the_same_id_replaces_the_older_connection(self):
        a, b = await self.pair()
        a2 = await self.connect('alice-2')
        await a2.open(a.name, b.name)
        # The older connection is told why, then closed with 4001.
        self.assertError(await a.recv_json(), 'replaced')
        code, rest = await a.expect_close(4001)
        self.assertEqual(rest, [], 'nothing may follow the replaced error')
        # The partner learns the old one is gone, then pairs with the newcomer.
        self.assertEqual(await b.recv_json(), {'close': 1})
        self.assertEqual(await b.recv_json(), {'start': 'answer'})
        self.assertEqual(await a2.recv_json(), {'start': 'offer'})
        m = {'sdp': {'type': 'offer', 'sdp': 'new'}, 'remote': b.name}
        await a2.send_json(m)
        self.assertEqual(await b.recv_json(), m)
        m2 = {'sdp': {'type': 'answer', 'sdp': 'to new'}, 'remote': a.name}
        await b.send_json(m2)
        self.assertEqual(await a2.recv_json(), m2)

    async def test_replacing_a_waiting_connection_keeps_the_newcomer_registered(self):
        alice, bob = unique_id('alice'), unique_id('bob')
        old = await self.connect('old')
        await old.open(alice, bob)
        await old.synced()  # old holds the id before new's open is read
        new = await self.connect('new')
        await new.open(alice, bob)
        self.assertError(await old.recv_json(), 'replaced')
        await old.expect_close(4001)
        await new.expect_nothing(0.2)
        b = await self.connect('bob')
        await b.open(bob, alice)
        self.assertEqual(await new.recv_json(), {'start': 'answer'})
        self.assertEqual(await b.recv_json(), {'start': 'offer'})

    async def test_the_replaced_connection_closing_does_not_unpair_the_newcomer(self):
        a, b = await self.pair()
        a2 = await self.connect('alice-2')
        await a2.open(a.name, b.name)
        self.assertError(await a.recv_json(), 'replaced')
        await a.expect_close(4001)
        self.assertEqual(await b.recv_json(), {'close': 1})
        self.assertEqual(await b.recv_json(), {'start': 'answer'})
        self.assertEqual(await a2.recv_json(), {'start': 'offer'})
        # Exactly one close for b, none later from the old socket's teardown.
        await b.expect_nothing(0.4)
        await a2.expect_nothing(0.1)


class TakeoverRefuseTest(SharedServerCase):
    server_args = ['--plugin-opt', 'pairing.takeover=refuse']

    async def test_a_second_open_with_the_same_id_is_refused_with_id_taken(self):
        alice, bob = unique_id('alice'), unique_id('bob')
        old = await self.connect('old')
        await old.open(alice, bob)
        await old.synced()  # old holds the id before new's open is read
        new = await self.connect('new')
        await new.open(alice, bob)
        self.assertError(await new.recv_json(), 'id-taken')
        await old.expect_nothing(0.2)
        # The newcomer stays open (but unregistered).
        self.assertEqual(await new.ping_pong(), {'pong': 1})
        # Bob pairs with the older connection, not the refused one.
        b = await self.connect('bob')
        await b.open(bob, alice)
        self.assertEqual(await old.recv_json(), {'start': 'answer'})
        self.assertEqual(await b.recv_json(), {'start': 'offer'})
        await new.expect_nothing(0.2)
        m = {'sdp': {'type': 'offer', 'sdp': 'to old'}, 'remote': alice}
        await b.send_json(m)
        self.assertEqual(await old.recv_json(), m)
        await new.expect_nothing(0.2)

    async def test_a_refused_newcomer_cannot_disturb_an_existing_pair(self):
        a, b = await self.pair()
        new = await self.connect('intruder')
        await new.open(a.name, b.name)
        self.assertError(await new.recv_json(), 'id-taken')
        await a.expect_nothing(0.2)
        await b.expect_nothing(0.1)
        await new.send_json({'sdp': {'type': 'offer', 'sdp': 'evil'}, 'remote': b.name})
        self.assertError(await new.recv_json(), {'not-paired', 'not-your-partner'})
        await new.close()
        await a.expect_nothing(0.3)
        await b.expect_nothing(0.1)
        m = {'ice': {'candidate': 'fine'}, 'remote': a.name}
        await b.send_json(m)
        self.assertEqual(await a.recv_json(), m)


if __name__ == '__main__':
    unittest.main()
