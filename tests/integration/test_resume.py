"""Calls survive a signaling drop: a client that asked to resume (its open
carries "resume") gets a token with start; when its WebSocket drops and it
comes back within the grace period with that token, it takes its old place:
the partner sees no close, and both are told {"resumed":...}. Tutorial
clients, which never send "resume", see exactly the old behaviour.
"""

import unittest

from duet_harness import eventually, unique_id, SharedServerTestCase
from test_metrics import scrape

# Seconds: short so the tests run fast, long enough that a loaded machine
# (an ASan pass next to other builds) reconnects well within it.
GRACE = 4.0


def drop(client):
    """The link dies (no close frame): what a phone leaving Wi-Fi looks like."""
    client.ws.transport.abort()


def closed_count(srv):
    """WebSocket connections duetd has seen close, for any reason."""
    s = scrape(srv)
    return sum(v for (name, _), v in s.samples.items() if name == 'duet_connections_closed_total')


async def closes_seen(srv, before, n=1):
    """Waits until duetd has seen n more connections close than before."""
    await eventually(lambda: closed_count(srv) >= before + n, what='%d close(s) seen by duetd' % n)


class ResumeTest(SharedServerTestCase):

    server_args = ['--plugin-opt', 'pairing.resume-grace=%s' % GRACE]

    async def resumable_pair(self):
        """alice waits and can resume; bob is a tutorial client. Returns (alice, bob, token)."""
        alice_id, bob_id = unique_id('alice'), unique_id('bob')
        alice = await self.connect(alice_id)
        await alice.send_json({'open': {'local': alice_id, 'remote': bob_id, 'resume': ''}})
        await alice.synced()  # alice waits before bob's open is read
        bob = await self.connect(bob_id)
        await bob.open(bob_id, alice_id)
        start = await alice.recv_json()
        self.assertEqual(set(start), {'start', 'resume'})
        self.assertEqual(start['start'], 'answer')
        self.assertRegex(start['resume'], r'^[0-9a-f]{32}$')
        self.assertEqual(await bob.recv_json(), {'start': 'offer'}, 'a tutorial client gets no token')
        return alice, bob, start['resume'], alice_id, bob_id

    async def test_a_client_that_resumes_in_time_keeps_its_pair_and_the_partner_sees_no_close(self):
        alice, bob, token, alice_id, bob_id = await self.resumable_pair()
        drop(alice)
        await bob.expect_nothing(0.4)
        back = await self.connect(alice_id)
        await back.send_json({'open': {'local': alice_id, 'remote': bob_id, 'resume': token}})
        resumed = await back.recv_json()
        self.assertEqual(resumed['resumed'], 'answer')
        self.assertRegex(resumed['resume'], r'^[0-9a-f]{32}$')
        self.assertNotEqual(resumed['resume'], token, 'a used token must not work twice')
        self.assertEqual(await bob.recv_json(), {'resumed': 'offer'})
        # The pair relays again, both ways (an ICE restart would go this way).
        offer = {'sdp': {'type': 'offer', 'sdp': 'v=0 ice-restart'}, 'remote': alice_id}
        await bob.send_json(offer)
        self.assertEqual(await back.recv_json(), offer)
        answer = {'sdp': {'type': 'answer', 'sdp': 'v=0'}, 'remote': bob_id}
        await back.send_json(answer)
        self.assertEqual(await bob.recv_json(), answer)

    async def test_while_a_partner_is_away_relays_get_partner_away(self):
        alice, bob, token, alice_id, bob_id = await self.resumable_pair()
        before = closed_count(self.server)
        drop(alice)
        await closes_seen(self.server, before)
        await bob.send_json({'ice': {'candidate': 'c'}, 'remote': alice_id})
        self.assertError(await bob.recv_json(), 'partner-away')

    async def test_after_the_grace_period_the_partner_gets_close_and_the_id_is_free(self):
        alice, bob, token, alice_id, bob_id = await self.resumable_pair()
        drop(alice)
        self.assertEqual(await bob.recv_json(timeout=GRACE + 20), {'close': 1})
        late = await self.connect(alice_id)
        await late.send_json({'open': {'local': alice_id, 'remote': bob_id, 'resume': token}})
        # The old call is over: a plain new pairing, with a fresh token.
        self.assertEqual(await bob.recv_json(), {'start': 'answer'})
        start = await late.recv_json()
        self.assertEqual(start['start'], 'offer')
        self.assertNotEqual(start['resume'], token)

    async def test_a_wrong_token_ends_the_held_call_and_starts_a_new_one(self):
        alice, bob, token, alice_id, bob_id = await self.resumable_pair()
        drop(alice)
        await bob.expect_nothing(0.2)
        other = await self.connect(alice_id)
        await other.send_json({'open': {'local': alice_id, 'remote': bob_id, 'resume': '0' * 32}})
        self.assertEqual(await bob.recv_json(), {'close': 1})
        self.assertEqual(await bob.recv_json(), {'start': 'answer'})
        self.assertEqual((await other.recv_json())['start'], 'offer')

    async def test_a_deliberate_hang_up_holds_no_place_and_the_partner_is_told_at_once(self):
        alice, bob, token, alice_id, bob_id = await self.resumable_pair()
        await alice.close()  # a close frame with 1000: the user hung up
        self.assertEqual(await bob.recv_json(timeout=GRACE / 2), {'close': 1})

    async def test_the_token_holder_back_before_its_old_link_is_noticed_dead_keeps_the_call(self):
        alice, bob, token, alice_id, bob_id = await self.resumable_pair()
        # The old socket is still open on the server (half-open TCP in real life).
        back = await self.connect(alice_id)
        await back.send_json({'open': {'local': alice_id, 'remote': bob_id, 'resume': token}})
        self.assertEqual((await back.recv_json())['resumed'], 'answer')
        self.assertEqual(await bob.recv_json(), {'resumed': 'offer'})
        await alice.expect_close(4001)

    async def test_a_tutorial_client_that_drops_is_closed_at_once_as_before(self):
        a, b = await self.pair()
        await a.close()
        self.assertEqual(await b.recv_json(timeout=GRACE / 2), {'close': 1})

    async def test_the_partner_leaving_while_the_other_is_away_frees_both_ids(self):
        alice, bob, token, alice_id, bob_id = await self.resumable_pair()
        before = closed_count(self.server)
        drop(alice)
        await closes_seen(self.server, before)
        await bob.close()
        await closes_seen(self.server, before, 2)
        back = await self.connect(alice_id)
        await back.send_json({'open': {'local': alice_id, 'remote': bob_id, 'resume': token}})
        await back.expect_nothing(0.3)  # nobody to resume with: it simply waits
        bob2 = await self.connect(bob_id)
        await bob2.open(bob_id, alice_id)
        self.assertEqual((await back.recv_json())['start'], 'answer')
        self.assertEqual(await bob2.recv_json(), {'start': 'offer'})


if __name__ == '__main__':
    unittest.main()
