"""Lines and rings across a cluster: with --cluster redis://... the ring
plugin keeps lines, devices, invites, missed calls and push subscriptions in
Redis (keys under duet:ring:) instead of SQLite, so every node sees the same
lines and a ring crosses nodes. A line made on one node attaches on any
other, an invite made on one is joined once on another; a caller on one node
rings devices on two others, accept, decline, no answer, cancel and busy
behave as on one node (README, "Ring me"); renames, removals and new links
reach every node; a node killed with SIGKILL loses no line and leaves no
line stuck busy; without Redis a line-create is refused in words.

Real duetd processes over real TLS, a real redis-server (redis_harness.py),
the cluster fixtures of test_cluster.py and the line helpers of test_ring.py.
Every wait is for a message, with generous timeouts.

Run: DUETD=build/core/duetd /usr/bin/python3 tests/integration/test_ring_cluster.py
"""

import asyncio
import os
import re
import time
import unittest

from duet_harness import eventually
from push_harness import PushService, require_push_service
from test_cluster import NODE_DEATH_LIMIT, RECV, SETTLE, ClusterCase, FreshClusterCase
from test_metrics import healthz
from test_ring import LINE_ID, RingClient
from test_ring_push import plaintext

# Rings, lines and joins all come from 127.0.0.1 here: limits for the
# Internet would refuse the tests' own traffic. (Joins with a code stay at
# 20 per address per minute: each class below makes fewer.)
RING_ARGS = ['--ring-rate', '1000', '--ring-line-rate', '1000', '--ring-create-rate', '1000']
# The ring time of the classes that wait for a ring to run out.
SHORT_RING_TIME = 2
# How long a dead caller's ring may keep its line busy (the brief: the ring
# time plus 10 s; measured with NODE_DEATH_LIMIT's 2 s of slack).
CALLER_GONE_LIMIT = SHORT_RING_TIME + NODE_DEATH_LIMIT
PAIRING_ID = re.compile(r'^ring-[0-9a-f]{32}$')


def ring_keys(redis):
    """The names of every key under duet:ring: in the Redis."""
    return [k for k in redis.cli('--scan', '--pattern', 'duet:ring:*').split('\n') if k]


def redis_contents(redis, keys):
    """Every key's name, type and contents as one text (redis-cli prints raw
    values when its output is not a terminal)."""
    readers = {'string': ('GET',), 'hash': ('HGETALL',), 'set': ('SMEMBERS',),
               'zset': ('ZRANGE', '0', '-1', 'WITHSCORES'), 'list': ('LRANGE', '0', '-1'),
               'stream': ('XRANGE', '-', '+')}
    out = []
    for key in keys:
        kind = redis.cli('TYPE', key).strip()
        out.append('%s (%s)' % (key, kind))
        reader = readers.get(kind)
        if reader:
            out.append(redis.cli(reader[0], key, *reader[1:]))
    return '\n'.join(out)


class ClusterRingClient(RingClient):
    """test_ring's line helpers, each on a node of the cluster chosen by its
    index, with the cluster's per-message timeout."""

    async def recv(self, client, kind, timeout=RECV):
        """The next message, which must be of kind; returns its body."""
        got = await client.recv_json(timeout)
        self.assertEqual(list(got), [kind], '%s: expected %s, got %r' % (client.name, kind, got))
        return got[kind]

    async def refused(self, client, message, code):
        await client.send_json(message)
        return self.assertError(await client.recv_json(RECV), code, '%s: answer to %r' % (client.name, message))

    async def connect_on(self, i, name):
        return await self.connect('%s (node %d)' % (name, i), server=self.node(i))

    async def make_line_on(self, i, name='Alice', label='laptop'):
        device = await self.connect_on(i, 'first device')
        await device.send_json({'line-create': {'name': name, 'label': label}})
        cred = await self.recv(device, 'line-credentials')
        state = await self.recv(device, 'line')
        return device, cred, state

    async def attach_on(self, i, cred, name='device'):
        device = await self.connect_on(i, name)
        await device.send_json({'line-attach': {'device': cred['device'], 'secret': cred['secret']}})
        return device, await self.recv(device, 'line')

    async def join_on(self, i, member, label='phone'):
        """A new device on node i joins member's line with an invite code
        member shows (member may be on any node)."""
        await member.send_json({'line-invite': {}})
        invite = await self.recv(member, 'line-invite')
        device = await self.connect_on(i, label)
        await device.send_json({'line-join': {'code': invite['code'], 'label': label}})
        cred = await self.recv(device, 'line-credentials')
        state = await self.recv(device, 'line')
        self.assertEqual(len((await self.recv(member, 'line'))['devices']), len(state['devices']),
                         '%s: the line as the member sees it after the join' % member.name)
        return device, cred, state, invite['code']

    async def two_devices_on(self, a, b, name='Alice'):
        """A line made on node a whose second device joined on node b:
        (device a, its credentials, device b, its credentials, line id)."""
        d1, cred1, state = await self.make_line_on(a, name)
        d2, cred2, _, _ = await self.join_on(b, d1)
        return d1, cred1, d2, cred2, state['line']

    async def ring_on(self, i, line, name='Bob'):
        caller = await self.connect_on(i, 'caller ' + name)
        await caller.send_json({'ring': {'line': line, 'name': name}})
        return caller, await self.recv(caller, 'ringing')

    async def ring_until_free(self, i, line, name, deadline, what):
        """Rings line from node i until it is no longer busy; fails once the
        monotonic deadline has passed. Returns (caller, ringing)."""
        while True:
            caller = await self.connect_on(i, 'caller ' + name)
            await caller.send_json({'ring': {'line': line, 'name': name}})
            got = await caller.recv_json(RECV)
            if 'ringing' in got:
                return caller, got['ringing']
            self.assertError(got, 'busy', 'ringing %s' % what)
            await caller.close()
            self.assertLess(time.monotonic(), deadline, '%s: the line is still busy' % what)
            await asyncio.sleep(0.25)

    async def call_across_nodes(self, caller, mine, call_node, theirs):
        """The accepted ring becomes a call: the caller opens on its own
        socket, the device on a fresh socket on node call_node (its line
        socket stays a listener); the caller waits, so it answers and the
        device offers. Returns the device's call socket."""
        await caller.open(mine['local'], mine['remote'])
        await self.registered(mine['local'])
        await caller.expect_nothing(SETTLE)
        call = await self.connect_on(call_node, 'call on the device')
        await call.open(theirs['local'], theirs['remote'])
        self.assertEqual(await caller.recv_json(RECV), {'start': 'answer'})
        self.assertEqual(await call.recv_json(RECV), {'start': 'offer'})
        offer = {'sdp': {'type': 'offer', 'sdp': 'v=0\r\n'}, 'remote': theirs['remote']}
        await call.send_json(offer)
        self.assertEqual(await caller.recv_json(RECV), offer)
        answer = {'sdp': {'type': 'answer', 'sdp': 'v=0\r\na=answer\r\n'}, 'remote': mine['remote']}
        await caller.send_json(answer)
        self.assertEqual(await call.recv_json(RECV), answer)
        return call


# ---------------------------------------------------------------------------
# Three nodes on one Redis, for the class
# ---------------------------------------------------------------------------

class RingAcrossNodesTest(ClusterRingClient, ClusterCase):
    nodes = 3
    node_args = RING_ARGS

    async def test_a_line_made_on_one_node_attaches_on_the_others_and_its_invite_joins_once_on_another(self):
        creator, cred, state = await self.make_line_on(0, 'Alice', 'laptop')
        self.assertRegex(state['line'], LINE_ID)
        tabs = []
        for i in (1, 2):
            tab, again = await self.attach_on(i, cred, 'laptop again')
            self.assertEqual((again['line'], again['name'], again['device'], again['devices']),
                             (state['line'], 'Alice', cred['device'], [{'device': cred['device'], 'label': 'laptop'}]),
                             'the line as node %d sees it' % i)
            self.assertEqual(again['missed'], [])
            tabs.append(tab)
        # An invite made on node 1 is joined on node 2.
        await tabs[0].send_json({'line-invite': {}})
        invite = await self.recv(tabs[0], 'line-invite')
        self.assertEqual(invite['expires_in_s'], 600)
        joiner = await self.connect_on(2, 'joiner')
        await joiner.send_json({'line-join': {'code': invite['code'], 'label': 'phone'}})
        cred2 = await self.recv(joiner, 'line-credentials')
        self.assertRegex(cred2['secret'], r'^[0-9a-f]{32}$')
        joined = await self.recv(joiner, 'line')
        self.assertEqual((joined['line'], joined['device']), (state['line'], cred2['device']))
        both = sorted([(cred['device'], 'laptop'), (cred2['device'], 'phone')])
        self.assertEqual(sorted((d['device'], d['label']) for d in joined['devices']), both)
        # Every connection of the first device, on all three nodes, hears of the new one.
        for c in [creator] + tabs:
            got = await self.recv(c, 'line')
            self.assertEqual(sorted((d['device'], d['label']) for d in got['devices']), both, c.name)
        # Once only, on whichever node.
        late = await self.connect_on(0, 'late joiner')
        await self.refused(late, {'line-join': {'code': invite['code'], 'label': 'tablet'}}, 'code-invalid')
        # The joined device's secret works on a node it never was on.
        _, on0 = await self.attach_on(0, cred2, 'phone again')
        self.assertEqual((on0['line'], on0['device']), (state['line'], cred2['device']))
        for c in [creator] + tabs:
            await c.expect_nothing(0.2)

    async def test_lines_live_in_redis_under_duet_ring_with_no_sqlite_file_and_no_device_secret_in_the_clear(self):
        d1, cred1, _ = await self.make_line_on(0, 'Alice')
        _, cred2, _, _ = await self.join_on(1, d1)
        keys = await asyncio.to_thread(ring_keys, self.redis)
        self.assertTrue(keys, 'Redis holds no key under duet:ring:')
        text = await asyncio.to_thread(redis_contents, self.redis, keys)
        for cred in (cred1, cred2):
            self.assertNotIn(cred['secret'], text, 'a device secret is in Redis as it is (only its SHA-256 may be)')
        for i in range(3):
            self.assertFalse(os.path.exists(os.path.join(self.node(i).state_dir, 'ring.db')),
                             'node %d made a SQLite store (ring.db) beside Redis' % i)
            for cred in (cred1, cred2):
                self.assertNotIn(cred['secret'], self.node(i).log(), 'node %d logged a device secret' % i)

    async def test_a_ring_from_one_node_rings_devices_on_two_others_and_accept_pairs_the_call_across_nodes(self):
        d1, _, d2, _, line = await self.two_devices_on(1, 2, 'Alice')
        caller, ringing = await self.ring_on(0, line, 'Ann')
        self.assertEqual(ringing['name'], 'Alice')
        await self.incoming([d1, d2], ringing['ring'], 'Ann')
        await d1.send_json({'ring-accept': {'ring': ringing['ring']}})
        theirs = await self.recv(d1, 'ring-connect')
        mine = await self.recv(caller, 'ring-connect')
        self.assertEqual((mine['ring'], theirs['ring']), (ringing['ring'], ringing['ring']))
        self.assertEqual((mine['local'], mine['remote']), (theirs['remote'], theirs['local']))
        self.assertRegex(mine['local'], PAIRING_ID)
        self.assertRegex(mine['remote'], PAIRING_ID)
        self.assertNotEqual(mine['local'], mine['remote'])
        self.assertEqual(await self.recv(d2, 'ring-stop'), {'ring': ringing['ring'], 'reason': 'answered-elsewhere'})
        # The call itself is the tutorial's, between node 0 and node 1.
        await self.call_across_nodes(caller, mine, 1, theirs)
        await d1.expect_nothing(0.3)
        await d2.expect_nothing(0.1)

    async def test_decline_on_one_node_tells_the_caller_on_another_and_stops_the_device_on_a_third(self):
        d1, _, d2, _, line = await self.two_devices_on(1, 2)
        caller, ringing = await self.ring_on(0, line)
        await self.incoming([d1, d2], ringing['ring'])
        await d2.send_json({'ring-decline': {'ring': ringing['ring']}})
        self.assertEqual(await self.recv(caller, 'ring-ended'), {'ring': ringing['ring'], 'reason': 'declined'})
        for d in (d1, d2):
            self.assertEqual(await self.recv(d, 'ring-stop'), {'ring': ringing['ring'], 'reason': 'declined'}, d.name)
        # The ring is over everywhere: a late accept on the other node finds nothing.
        await self.refused(d1, {'ring-accept': {'ring': ringing['ring']}}, 'ring-unknown')
        await caller.expect_nothing(0.3)

    async def test_the_caller_cancelling_or_leaving_on_one_node_stops_the_devices_on_the_others(self):
        d1, _, d2, _, line = await self.two_devices_on(1, 2)
        caller, ringing = await self.ring_on(0, line)
        await self.incoming([d1, d2], ringing['ring'])
        await caller.send_json({'ring-cancel': {'ring': ringing['ring']}})
        self.assertEqual(await self.recv(caller, 'ring-ended'), {'ring': ringing['ring'], 'reason': 'cancelled'})
        for d in (d1, d2):
            self.assertEqual(await self.recv(d, 'ring-stop'), {'ring': ringing['ring'], 'reason': 'cancelled'}, d.name)
        # Again, and this time the caller closes its WebSocket.
        caller, ringing = await self.ring_on(0, line)
        await self.incoming([d1, d2], ringing['ring'])
        await caller.close()
        for d in (d1, d2):
            self.assertEqual(await self.recv(d, 'ring-stop'), {'ring': ringing['ring'], 'reason': 'cancelled'}, d.name)
        # Nothing holds the line: it rings at once.
        caller, ringing = await self.ring_on(2, line, 'Carol')
        await self.incoming([d1, d2], ringing['ring'], 'Carol')

    async def test_a_second_caller_on_another_node_hears_busy_while_the_line_rings_and_while_its_call_is_up(self):
        d1, _, d2, _, line = await self.two_devices_on(1, 2)
        caller, ringing = await self.ring_on(0, line, 'Ann')
        await self.incoming([d1, d2], ringing['ring'], 'Ann')
        second = await self.connect_on(2, 'second caller')
        await self.refused(second, {'ring': {'line': line, 'name': 'Carol'}}, 'busy')
        await d1.expect_nothing(0.3)
        await d2.expect_nothing(0.1)
        await d2.send_json({'ring-accept': {'ring': ringing['ring']}})
        theirs = await self.recv(d2, 'ring-connect')
        mine = await self.recv(caller, 'ring-connect')
        await self.recv(d1, 'ring-stop')
        # Accepted, not yet opened: busy.
        await self.refused(second, {'ring': {'line': line, 'name': 'Carol'}}, 'busy')
        await self.call_across_nodes(caller, mine, 2, theirs)
        # The call is up (node 0 and node 2): busy on every node.
        for i in (1, 2, 0):
            third = await self.connect_on(i, 'third caller')
            await self.refused(third, {'ring': {'line': line, 'name': 'Dave'}}, 'busy')
        await d1.expect_nothing(0.2)
        await d2.expect_nothing(0.1)

    async def test_the_line_rings_again_once_its_call_across_nodes_ends(self):
        d1, _, d2, _, line = await self.two_devices_on(1, 2)
        caller, ringing = await self.ring_on(0, line, 'Ann')
        await self.incoming([d1, d2], ringing['ring'], 'Ann')
        await d1.send_json({'ring-accept': {'ring': ringing['ring']}})
        theirs = await self.recv(d1, 'ring-connect')
        mine = await self.recv(caller, 'ring-connect')
        await self.recv(d2, 'ring-stop')
        call = await self.call_across_nodes(caller, mine, 1, theirs)
        await call.close()
        self.assertEqual(await caller.recv_json(RECV), {'close': 1})
        later, again = await self.ring_until_free(2, line, 'Dave', time.monotonic() + RECV,
                                                  'after the call ended')
        self.assertNotEqual(again['ring'], ringing['ring'])
        await self.incoming([d1, d2], again['ring'], 'Dave')

    async def test_a_rename_on_one_node_reaches_the_device_on_another_and_the_caller_on_a_third(self):
        d1, _, d2, _, line = await self.two_devices_on(1, 2, 'Alice')
        await d1.send_json({'line-rename': {'name': 'Grandma'}})
        self.assertEqual((await self.recv(d1, 'line'))['name'], 'Grandma')
        renamed = await self.recv(d2, 'line')
        self.assertEqual((renamed['line'], renamed['name']), (line, 'Grandma'))
        caller, ringing = await self.ring_on(0, line)
        self.assertEqual(ringing['name'], 'Grandma')
        await self.incoming([d1, d2], ringing['ring'])
        await caller.send_json({'ring-cancel': {'ring': ringing['ring']}})
        await self.recv(caller, 'ring-ended')

    async def test_a_device_removed_on_one_node_is_told_on_its_own_and_its_secret_stops_working_everywhere(self):
        d1, cred1, d2, cred2, line = await self.two_devices_on(1, 2)
        await d1.send_json({'line-remove-device': {'device': cred2['device']}})
        self.assertEqual(await self.recv(d2, 'line-removed'), {'device': cred2['device']})
        state = await self.recv(d1, 'line')
        self.assertEqual([d['device'] for d in state['devices']], [cred1['device']])
        # The removed connection (node 2) is no device any more, and no node takes its secret.
        await self.refused(d2, {'line-rename': {'name': 'Mallory'}}, 'not-attached')
        for i in (0, 1, 2):
            stranger = await self.connect_on(i, 'removed device')
            await self.refused(stranger, {'line-attach': cred2}, 'device-unknown')
        # A ring reaches the device that is left, and not the removed one.
        caller, ringing = await self.ring_on(0, line)
        await self.incoming([d1], ringing['ring'])
        await d2.expect_nothing(0.3)

    async def test_a_new_link_made_on_one_node_retires_the_old_id_on_every_node(self):
        d1, _, d2, _, old = await self.two_devices_on(1, 2)
        await d1.send_json({'line-new-link': {}})
        new = (await self.recv(d1, 'line'))['line']
        self.assertEqual((await self.recv(d2, 'line'))['line'], new)
        self.assertNotEqual(new, old)
        self.assertRegex(new, LINE_ID)
        for i in (0, 1, 2):
            stranger = await self.connect_on(i, 'old link')
            await self.refused(stranger, {'ring': {'line': old, 'name': 'Eve'}}, 'line-unknown')
        await d1.expect_nothing(0.3)
        await d2.expect_nothing(0.1)
        caller, ringing = await self.ring_on(0, new)
        await self.incoming([d1, d2], ringing['ring'])


# ---------------------------------------------------------------------------
# A ring that runs out
# ---------------------------------------------------------------------------

class NoAnswerAcrossNodesTest(ClusterRingClient, ClusterCase):
    nodes = 3
    node_args = RING_ARGS + ['--ring-time', str(SHORT_RING_TIME)]

    async def test_no_answer_is_a_missed_call_on_both_nodes_and_in_the_line_on_every_node(self):
        d1, cred1, d2, _, line = await self.two_devices_on(1, 2)
        caller, ringing = await self.ring_on(0, line, 'Bob')
        await self.incoming([d1, d2], ringing['ring'], 'Bob')
        ended = await caller.recv_json(SHORT_RING_TIME + RECV)
        self.assertEqual(ended, {'ring-ended': {'ring': ringing['ring'], 'reason': 'no-answer'}})
        missed = None
        for d in (d1, d2):
            self.assertEqual(await self.recv(d, 'ring-stop'), {'ring': ringing['ring'], 'reason': 'missed'}, d.name)
            got = await self.recv(d, 'missed')
            self.assertEqual((got['ring'], got['caller']), (ringing['ring'], 'Bob'), d.name)
            self.assertIsInstance(got['at'], int)
            if missed is None:
                missed = got
            self.assertEqual(got['at'], missed['at'], 'the two nodes tell different times of one missed call')
        # A device attaching afterwards, on any node, finds the missed call in its line.
        for i in (0, 1, 2):
            _, state = await self.attach_on(i, cred1, 'later tab')
            self.assertEqual([(m['caller'], m['at']) for m in state['missed']], [('Bob', missed['at'])],
                             'the missed calls of the line on node %d' % i)
        await caller.expect_nothing(0.2)


# ---------------------------------------------------------------------------
# Failures: a node killed, Redis gone (a fresh cluster each)
# ---------------------------------------------------------------------------

class PushAcrossNodesTest(ClusterRingClient, FreshClusterCase):
    """A browser subscribes for the public key its own node gave it; the
    push may come from any node. Checked with the tests' own push service
    (tests/push-service): the JWT verifies with the key in the push's
    Authorization header, which must be the one the device subscribed for."""

    def setUp(self):
        require_push_service()
        self.push = PushService()
        self.push.__enter__()
        self.addCleanup(self.push.close)
        super().setUp()

    async def test_a_subscription_made_on_a_node_that_dies_gets_its_push_from_another_signed_with_its_key(self):
        self.start_cluster(2, RING_ARGS + ['--plugin-opt', 'ring.push-allow-private=on',
                                           '--ring-push-subject', 'mailto:ops@example.org',
                                           '--plugin-opt', 'ring.push-ca-file=' + self.push.ca_file])
        keys = []
        for i in (0, 1):
            asker = await self.connect_on(i, 'key')
            await asker.send_json({'line-push-key': {}})
            keys.append((await self.recv(asker, 'line-push-key'))['key'])
        self.assertEqual(keys[0], keys[1], 'every node gives the one key of the cluster')
        device, cred, state = await self.make_line_on(1, 'Alice')
        sub = await asyncio.to_thread(self.push.subscribe, 'ok')
        await device.send_json({'line-push': {'endpoint': sub['endpoint'], 'keys': sub['keys']}})
        self.assertEqual(await self.recv(device, 'line-push'), {'push': True})
        await device.close()
        self.cluster.kill_node(1)
        caller, ringing = await self.ring_on(0, state['line'], 'Bob')
        event, = await asyncio.to_thread(self.push.wait_pushes, 1, sub['id'], 30)
        self.assertEqual(event['errors'], [])
        self.assertEqual(event['vapid_key'], keys[1], 'signed with the key the device subscribed for')
        self.assertEqual(plaintext(event)['incoming']['caller'], 'Bob')
        self.assertEqual(plaintext(event)['incoming']['ring'], ringing['ring'])


class NodeKilledRingTest(ClusterRingClient, FreshClusterCase):

    async def test_a_device_whose_node_is_killed_attaches_again_on_another_node_and_rings(self):
        self.start_cluster(3, RING_ARGS)
        # The line is made on node 1, which dies: the line does not die with it.
        d1, cred1, d2, cred2, line = await self.two_devices_on(1, 2, 'Alice')
        self.cluster.kill_node(1)
        back, state = await self.attach_on(0, cred1, 'back')
        self.assertEqual((state['line'], state['name'], state['device']), (line, 'Alice', cred1['device']))
        self.assertEqual(sorted(d['device'] for d in state['devices']), sorted([cred1['device'], cred2['device']]))
        caller, ringing = await self.ring_on(2, line, 'Bob')
        await self.incoming([back, d2], ringing['ring'], 'Bob')
        await back.send_json({'ring-accept': {'ring': ringing['ring']}})
        theirs = await self.recv(back, 'ring-connect')
        mine = await self.recv(caller, 'ring-connect')
        self.assertEqual((mine['local'], mine['remote']), (theirs['remote'], theirs['local']))
        self.assertEqual(await self.recv(d2, 'ring-stop'), {'ring': ringing['ring'], 'reason': 'answered-elsewhere'})

    async def test_a_ring_whose_caller_s_node_is_killed_stops_on_every_device_and_leaves_the_line_free(self):
        self.start_cluster(3, RING_ARGS + ['--ring-time', str(SHORT_RING_TIME)])
        d1, _, d2, _, line = await self.two_devices_on(1, 2)
        caller, ringing = await self.ring_on(0, line, 'Ann')
        await self.incoming([d1, d2], ringing['ring'], 'Ann')
        t0 = time.monotonic()
        self.cluster.kill_node(0)
        for d in (d1, d2):
            left = max(t0 + CALLER_GONE_LIMIT - time.monotonic(), 0.1)
            self.assertEqual(await self.recv(d, 'ring-stop', timeout=left),
                             {'ring': ringing['ring'], 'reason': 'cancelled'},
                             '%s: the end of a ring whose caller\'s node died' % d.name)
        took = time.monotonic() - t0
        self.assertLessEqual(took, CALLER_GONE_LIMIT, 'the devices stopped ringing after %.1f s' % took)
        # Not stuck busy: a new caller on another node gets through in time.
        later, again = await self.ring_until_free(1, line, 'Carol', t0 + CALLER_GONE_LIMIT,
                                                  'after the caller\'s node was killed')
        self.assertNotEqual(again['ring'], ringing['ring'])
        await self.incoming([d1, d2], again['ring'], 'Carol')


class RedisOutageRingTest(ClusterRingClient, FreshClusterCase):

    async def test_with_redis_stopped_line_create_is_cluster_unavailable_and_works_once_redis_is_back(self):
        self.start_cluster(2, RING_ARGS)
        _, cred, state = await self.make_line_on(0, 'Before')
        _, seen = await self.attach_on(1, cred)
        self.assertEqual(seen['line'], state['line'])

        self.redis.stop()
        for i in (0, 1):
            await eventually(lambda: healthz(self.node(i))['status'] == 'degraded',
                             what='node %d /healthz "degraded"' % i)
        for i in (0, 1):
            c = await self.connect_on(i, 'during the outage')
            await self.refused(c, {'line-create': {'name': 'Alice'}}, 'cluster-unavailable')
            self.assertEqual(await c.ping_pong(RECV), {'pong': 1})
        self.cluster.assert_alive()

        self.redis.start()
        for i in (0, 1):
            await eventually(lambda: healthz(self.node(i))['status'] == 'ok', timeout=30,
                             what='node %d /healthz "ok" again after Redis came back' % i)
        _, cred2, state2 = await self.make_line_on(1, 'After')
        self.assertRegex(state2['line'], LINE_ID)
        _, again = await self.attach_on(0, cred2)
        self.assertEqual((again['line'], again['name']), (state2['line'], 'After'))


if __name__ == '__main__':
    unittest.main(verbosity=2)
