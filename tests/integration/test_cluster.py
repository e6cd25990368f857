"""A cluster of duetd nodes on one Redis (issue 12): every node is the same
service, so any client calls any other whichever node each is connected to.
The protocol (README, "Protocol") is unchanged across nodes: mutual pairing,
relays only to the partner with unchanged bytes, exactly once and in order,
takeover, call tokens, iceServers, resume; a node killed with SIGKILL costs
its partners elsewhere a {"close":1} within 10 s; Redis going away costs
only cross-node traffic (cluster-unavailable) and /healthz says "degraded".

Real duetd processes over real TLS, a real redis-server (tests/integration/
redis_harness.py). Run:
  DUETD=build/core/duetd /usr/bin/python3 tests/integration/test_cluster.py
"""

import asyncio
import itertools
import json
import os
import re
import shutil
import signal
import tempfile
import time
import unittest

from duet_harness import DuetTestCase, Server, eventually, run_duetd, unique_id
from redis_harness import (Cluster, RedisServer, cluster_args,
                           require_cluster_support, require_redis)
from test_auth import SECRET, mint
from test_metrics import healthz, scrape
from test_resume import closed_count, closes_seen, drop

# How long a waiting client is given to be registered cluster-wide before its
# partner opens, so that roles (answer to the waiting one, offer to the
# newcomer) are deterministic. A silence check, as the one-node tests do.
SETTLE = 0.5
# Cross-node relays go through Redis: generous per-message timeouts.
RECV = 20.0
# The promise for a node killed with SIGKILL is 10 s; measured with slack.
NODE_DEATH_LIMIT = 12.0

# Many connections come from 127.0.0.1; the per-IP default (32) is for the
# Internet, not for this test.
COMMON_ARGS = ['--max-connections-per-ip', '1000', '--max-messages-per-second', '1000']


def ice(sender, to, seq, pad=0):
    """An ICE message naming its sender and sequence number, as exact text."""
    return ('{"ice":{"candidate":"candidate:%d 1 udp 2122260223 10.0.%d.%d 5%04d typ host%s",'
            '"sdpMid":"0","sdpMLineIndex":0,"seq":%d,"from":"%s"},"remote":"%s"}'
            % (seq, seq // 250, seq % 250, seq, ' ' + 'x' * pad if pad else '', seq, sender, to))


class ClusterCalls:
    """Calls on self.cluster's nodes (and places in self.redis), for the
    test cases of a cluster, however they start it."""

    def node(self, i):
        return self.cluster.nodes[i]

    async def open_on(self, i, local, remote, **extra):
        """Connects to node i and sends open (with extra members: token, resume)."""
        c = await self.connect(local, server=self.node(i))
        body = {'local': local, 'remote': remote}
        body.update(extra)
        await c.send_json({'open': body})
        return c

    async def registered(self, *peer_ids):
        """Waits until the cluster holds a place in Redis for each id: then
        an open on any node sees it (a node writes places asynchronously,
        after it answered nothing to the open)."""
        for peer_id in peer_ids:
            await eventually(lambda: self.redis.place(peer_id) is not None,
                             what='a place for %s in Redis' % peer_id)

    async def cross_pair(self, na, nb, a_id=None, b_id=None):
        """a waits on node na, b arrives on node nb; returns (a, b)."""
        a_id, b_id = a_id or unique_id('a'), b_id or unique_id('b')
        a = await self.open_on(na, a_id, b_id)
        await self.registered(a_id)
        await a.expect_nothing(SETTLE)
        b = await self.open_on(nb, b_id, a_id)
        self.assertEqual(await a.recv_json(RECV), {'start': 'answer'}, 'the waiting peer (node %d)' % na)
        self.assertEqual(await b.recv_json(RECV), {'start': 'offer'}, 'the newcomer (node %d)' % nb)
        return a, b

    async def resumable_pair(self, na, nb, a_id, b_id):
        """a (who can resume) waits on node na, b (a tutorial client)
        arrives on node nb; returns (a, b, a's resume token)."""
        a = await self.open_on(na, a_id, b_id, resume='')
        await self.registered(a_id)
        await a.expect_nothing(SETTLE)
        b = await self.open_on(nb, b_id, a_id)
        token = (await a.recv_json(RECV))['resume']
        self.assertEqual(await b.recv_json(RECV), {'start': 'offer'})
        return a, b, token

    async def assert_relays(self, a, b, tag='ok'):
        """One message each way, exact bytes."""
        m1 = ice(a.name, b.name, 1, len(tag))
        await a.send_text(m1)
        self.assertEqual(await b.recv_text(RECV), m1)
        m2 = '{"sdp":{"type":"answer","sdp":"v=0 %s"},"remote":"%s"}' % (tag, a.name)
        await b.send_text(m2)
        self.assertEqual(await a.recv_text(RECV), m2)


class ClusterCase(ClusterCalls, DuetTestCase):
    """A Redis and `nodes` duetd on it for the whole class."""

    nodes = 3
    node_args = []
    redis_kwargs = {}

    @classmethod
    def setUpClass(cls):
        require_redis()
        require_cluster_support()
        cls.redis = RedisServer(**cls.redis_kwargs).__enter__()
        try:
            cls.cluster = Cluster(cls.nodes, cls.redis, COMMON_ARGS + list(cls.node_args)).__enter__()
        except BaseException:
            cls.redis.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.cluster.__exit__(None, None, None)
        finally:
            cls.redis.cleanup()

    def current_server(self):
        return None

    async def asyncTearDown(self):
        await super().asyncTearDown()
        self.cluster.assert_alive()


# ---------------------------------------------------------------------------
# The fixture itself (runs without the server side of issue 12)
# ---------------------------------------------------------------------------

class RedisFixtureTest(unittest.TestCase):

    def setUp(self):
        require_redis()

    def test_a_unix_socket_redis_starts_answers_stops_and_restarts_on_the_same_socket(self):
        with RedisServer() as r:
            self.assertTrue(r.url.startswith('unix:///'), r.url)
            self.assertTrue(r.ping())
            self.assertTrue(r._raw_ping(1.0), 'PING over a raw socket')
            r.cli('SET', 'k', 'v')
            pid = r.pid
            r.stop()
            self.assertFalse(r.alive())
            self.assertFalse(r.ping())
            self.assertFalse(r._raw_ping(0.5))
            r.restart()
            self.assertNotEqual(r.pid, pid)
            self.assertTrue(r.ping())
            self.assertEqual(r.cli('GET', 'k').strip(), '', 'no persistence: a restart starts empty')
            r.kill()
            self.assertEqual(r.proc.returncode, -signal.SIGKILL)
            r.start()
            self.assertTrue(r.ping())

    def test_a_tcp_redis_with_a_password_refuses_a_wrong_one_and_restarts_on_the_same_port(self):
        with RedisServer(tcp=True, password='pw-%s' % unique_id('r')) as r:
            self.assertRegex(r.url, r'^redis://127\.0\.0\.1:\d+$')
            self.assertTrue(r.ping())
            self.assertTrue(r._raw_ping(1.0))
            good = r.password
            r.password = 'wrong'
            self.assertFalse(r._raw_ping(1.0), 'a wrong password must not get PONG')
            r.password = good
            port = r.port
            r.restart()
            self.assertEqual(r.port, port)
            self.assertTrue(r.ping())
            with open(r.password_file()) as f:
                self.assertEqual(f.read(), good + '\n')
            self.assertIn(':%s@' % good, r.url_with_password(db=0))


# ---------------------------------------------------------------------------
# The protocol across nodes
# ---------------------------------------------------------------------------

class CrossNodeTest(ClusterCase):
    nodes = 3
    node_args = ['--plugin-opt', 'pairing.resume-grace=5']

    async def test_the_tutorial_flow_with_the_two_sides_on_different_nodes(self):
        alice, bob = unique_id('alice'), unique_id('bob')
        a = await self.open_on(0, alice, bob)
        await self.registered(alice)
        await a.expect_nothing(SETTLE)
        b = await self.open_on(1, bob, alice)
        self.assertEqual(await a.recv_json(RECV), {'start': 'answer'})
        self.assertEqual(await b.recv_json(RECV), {'start': 'offer'})
        # b offers, a answers, candidates both ways: the same bytes arrive.
        offer = ('{"sdp":{"type":"offer","sdp":"v=0\\r\\no=- 4611731400430051336 2 IN IP4 127.0.0.1\\r\\n'
                 's=-\\r\\nt=0 0\\r\\na=group:BUNDLE 0\\r\\n"},"remote":"%s"}' % alice)
        await b.send_text(offer)
        self.assertEqual(await a.recv_text(RECV), offer)
        answer = ('{ "remote" : "%s" ,\n\t"sdp" : { "sdp" : "v=0\\r\\n\u65e5\u672c \\ud83c\\udf89" , '
                  '"type" : "answer" } }' % bob)
        await a.send_text(answer)
        self.assertEqual(await b.recv_text(RECV), answer)
        cand_a = ('{"ice":{"candidate":"candidate:842163049 1 udp 1677729535 192.0.2.1 3478 typ srflx raddr '
                  '0.0.0.0 rport 0 generation 0 ufrag EsAw","sdpMid":"0","sdpMLineIndex":0},"remote":"%s"}' % bob)
        cand_b = ('{"ice":{"candidate":"candidate:1 1 UDP 2122252543 198.51.100.7 50000 typ host","sdpMid":"0",'
                  '"sdpMLineIndex":0,"usernameFragment":null},"remote":"%s","extra":{"unknown":[1,2.5e-3]}}' % alice)
        await a.send_text(cand_a)
        await b.send_text(cand_b)
        self.assertEqual(await b.recv_text(RECV), cand_a)
        self.assertEqual(await a.recv_text(RECV), cand_b)
        # Keepalive is answered by one's own node.
        self.assertEqual(await a.ping_pong(), {'pong': 1})
        await a.expect_nothing(0.3)
        await b.expect_nothing(0.1)
        # b leaves: a, on another node, is told; b comes back on a third node.
        await b.close()
        self.assertEqual(await a.recv_json(RECV), {'close': 1})
        b2 = await self.open_on(2, bob, alice)
        self.assertEqual(await a.recv_json(RECV), {'start': 'answer'})
        self.assertEqual(await b2.recv_json(RECV), {'start': 'offer'})
        await self.assert_relays(a, b2, 'again')
        await a.expect_nothing(0.2)

    async def test_large_messages_and_a_burst_cross_whole_in_order_and_unchanged(self):
        a, b = await self.cross_pair(0, 2)
        sizes = [60, 125, 126, 127, 4000, 16384, 16400, 30000, 65535, 65536]
        sizes += [60 + (i * 37) % 900 for i in range(40)]
        texts = []
        for i, size in enumerate(sizes):
            head = '{"ice":{"n":%d,"pad":"' % i
            tail = '"},"remote":"%s"}' % a.name
            texts.append(head + 'p' * (size - len(head) - len(tail)) + tail)
        for text in texts:
            await b.send_text(text)
        for i, text in enumerate(texts):
            got = await a.recv_text(RECV)
            self.assertEqual(len(got), len(text), 'message %d: length' % i)
            self.assertEqual(got, text, 'message %d differs' % i)
        await a.expect_nothing(0.3)

    async def test_sixty_pairs_over_three_nodes_no_cross_talk_nothing_lost_order_kept(self):
        # Pair i: a on node i % 3; b on the same node for i < 20, else on another.
        n_pairs, per_side = 60, 40
        ids = [(unique_id('m%da' % i), unique_id('m%db' % i)) for i in range(n_pairs)]
        where = [(i % 3, (i + i // 20) % 3) for i in range(n_pairs)]
        self.assertEqual(sum(1 for x, y in where if x != y), 40)
        firsts = await asyncio.gather(*(self.open_on(where[i][0], x, y) for i, (x, y) in enumerate(ids)))
        await self.registered(*(x for x, _ in ids))
        await asyncio.gather(*(c.expect_nothing(SETTLE) for c in firsts))
        seconds = await asyncio.gather(*(self.open_on(where[i][1], y, x) for i, (x, y) in enumerate(ids)))
        starts_a = await asyncio.gather(*(c.recv_json(RECV) for c in firsts))
        starts_b = await asyncio.gather(*(c.recv_json(RECV) for c in seconds))
        for i in range(n_pairs):
            self.assertEqual(starts_a[i], {'start': 'answer'}, 'pair %d (nodes %s)' % (i, where[i]))
            self.assertEqual(starts_b[i], {'start': 'offer'}, 'pair %d (nodes %s)' % (i, where[i]))

        def expected(sender, to):
            # Mostly ICE; every 10th message a 3-6 KB SDP-sized one.
            return [ice(sender, to, k, pad=3000 + 300 * (k % 10) if k % 10 == 9 else 0)
                    for k in range(per_side)]

        async def talk(a, b):
            ea, eb = expected(a.name, b.name), expected(b.name, a.name)
            for k in range(per_side):  # interleaved: a k, b k, a k+1, ...
                await a.send_text(ea[k])
                await b.send_text(eb[k])
            return ea, eb

        async def listen(c, want, label):
            for k, text in enumerate(want):
                got = await c.recv_text(10.0)
                if got != text:
                    self.fail('%s: message %d is not the one expected next (lost, reordered, duplicated '
                              'or from someone else):\n got  %r\n want %r' % (label, k, got[:200], text[:200]))

        pairs = list(zip(firsts, seconds))
        listeners = []
        sent = await asyncio.gather(*(talk(a, b) for a, b in pairs))
        for i, ((a, b), (ea, eb)) in enumerate(zip(pairs, sent)):
            listeners.append(listen(b, ea, 'pair %d %s->%s' % (i, where[i][0], where[i][1])))
            listeners.append(listen(a, eb, 'pair %d %s->%s' % (i, where[i][1], where[i][0])))
        await asyncio.gather(*listeners)
        # Exactly once: nothing more arrives anywhere.
        await asyncio.gather(*(c.expect_nothing(0.5) for c in firsts + seconds))

    async def test_only_mutual_requests_pair_across_nodes(self):
        # A names B (node 0), B names C (node 1), C names A (node 2): nobody pairs.
        ida, idb, idc = unique_id('a'), unique_id('b'), unique_id('c')
        a = await self.open_on(0, ida, idb)
        b = await self.open_on(1, idb, idc)
        c = await self.open_on(2, idc, ida)
        for cl in (a, b, c):
            await cl.expect_nothing(SETTLE)

    async def test_a_stranger_on_another_node_cannot_reach_a_paired_peer(self):
        a, b = await self.cross_pair(0, 1)
        c = await self.open_on(2, unique_id('carol'), b.name)
        await c.expect_nothing(SETTLE)
        await c.send_json({'sdp': {'type': 'offer', 'sdp': 'evil'}, 'remote': b.name})
        self.assertError(await c.recv_json(RECV), {'not-paired', 'not-your-partner'})
        # A peer paired across nodes names another pair's member.
        d, e = await self.cross_pair(2, 0)
        await d.send_json({'ice': {'candidate': 'evil'}, 'remote': b.name})
        self.assertError(await d.recv_json(RECV), 'not-your-partner')
        await c.close()
        for cl in (a, b, e):
            await cl.expect_nothing(0.3)
        await self.assert_relays(a, b)
        await self.assert_relays(d, e)

    async def test_a_waiting_peer_that_leaves_is_forgotten_cluster_wide(self):
        alice, bob = unique_id('alice'), unique_id('bob')
        a = await self.open_on(0, alice, bob)
        await self.registered(alice)
        await a.expect_nothing(SETTLE)
        before = closed_count(self.node(0))
        await a.close()
        await closes_seen(self.node(0), before)
        b = await self.open_on(1, bob, alice)
        await self.registered(bob)
        await b.expect_nothing(SETTLE)
        a2 = await self.open_on(2, alice, bob)
        self.assertEqual(await b.recv_json(RECV), {'start': 'answer'})
        self.assertEqual(await a2.recv_json(RECV), {'start': 'offer'})

    async def test_resume_on_another_node_keeps_the_call(self):
        alice_id, bob_id = unique_id('alice'), unique_id('bob')
        alice = await self.open_on(0, alice_id, bob_id, resume='')
        await self.registered(alice_id)
        await alice.expect_nothing(SETTLE)
        bob = await self.open_on(1, bob_id, alice_id)
        start = await alice.recv_json(RECV)
        self.assertEqual(start['start'], 'answer')
        self.assertRegex(start['resume'], r'^[0-9a-f]{32}$')
        self.assertEqual(await bob.recv_json(RECV), {'start': 'offer'})
        drop(alice)
        await bob.expect_nothing(SETTLE)
        back = await self.open_on(2, alice_id, bob_id, resume=start['resume'])
        resumed = await back.recv_json(RECV)
        self.assertEqual(resumed['resumed'], 'answer')
        self.assertRegex(resumed['resume'], r'^[0-9a-f]{32}$')
        self.assertNotEqual(resumed['resume'], start['resume'])
        self.assertEqual(await bob.recv_json(RECV), {'resumed': 'offer'})
        await self.assert_relays(bob, back, 'ice-restart')
        # A used token does not work twice, on any node.
        again = await self.open_on(1, alice_id, bob_id, resume=start['resume'])
        first = await again.recv_json(RECV)
        self.assertNotIn('resumed', first, 'a used token resumed again: %r' % first)

    async def test_the_token_holder_back_on_another_node_before_its_link_is_seen_dead(self):
        alice_id, bob_id = unique_id('alice'), unique_id('bob')
        alice, bob, token = await self.resumable_pair(1, 0, alice_id, bob_id)
        back = await self.open_on(2, alice_id, bob_id, resume=token)
        self.assertEqual((await back.recv_json(RECV))['resumed'], 'answer')
        self.assertEqual(await bob.recv_json(RECV), {'resumed': 'offer'})
        await alice.expect_close(4001, timeout=RECV)
        await bob.expect_nothing(0.3)

    async def test_metrics_count_cluster_traffic_and_healthz_is_ok(self):
        a, b = await self.cross_pair(0, 1)
        before_sent = scrape(self.node(0)).value('duet_cluster_messages_sent_total')
        before_recv = scrape(self.node(1)).value('duet_cluster_messages_received_total')
        for k in range(5):
            await a.send_text(ice(a.name, b.name, k))
        for k in range(5):
            self.assertEqual(await b.recv_text(RECV), ice(a.name, b.name, k))
        await eventually(lambda: scrape(self.node(0)).value('duet_cluster_messages_sent_total') >= before_sent + 5,
                         what='node 0 counting 5 more cluster messages sent')
        await eventually(lambda: scrape(self.node(1)).value('duet_cluster_messages_received_total')
                         >= before_recv + 5, what='node 1 counting 5 more cluster messages received')
        for i in range(3):
            s = scrape(self.node(i))
            self.assertEqual(s.types.get('duet_cluster_messages_sent_total'), 'counter')
            self.assertEqual(s.types.get('duet_cluster_messages_received_total'), 'counter')
            self.assertEqual(s.types.get('duet_cluster_redis_reconnects_total'), 'counter')
            self.assertEqual(s.types.get('duet_cluster_redis_rtt_microseconds'), 'gauge')
            self.assertEqual(s.types.get('duet_cluster_redis_up'), 'gauge')
            self.assertEqual(s.value('duet_cluster_redis_up'), 1, 'node %d' % i)
            self.assertEqual(s.value('duet_cluster_redis_reconnects_total'), 0, 'node %d' % i)
            self.assertGreaterEqual(s.value('duet_cluster_redis_rtt_microseconds'), 0)
            self.assertEqual(healthz(self.node(i))['status'], 'ok', 'node %d' % i)


class IceServersAndTokensTest(ClusterCase):
    """Two nodes with the same --auth-secret and --stun: a token minted for
    one node is good on the other, and each node sends its iceServers."""

    nodes = 2

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='duet-cluster-auth-')
        cls.secret_file = os.path.join(cls.tmp, 'secret')
        with open(cls.secret_file, 'w') as f:
            f.write(SECRET + '\n')
        cls.node_args = ['--auth-secret', cls.secret_file, '--stun', 'stun:stun.example.org']
        try:
            super().setUpClass()
        except BaseException:
            shutil.rmtree(cls.tmp, True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.tmp, True)

    async def test_tokens_bound_to_the_peer_pair_across_nodes_and_each_node_sends_ice_servers(self):
        alice, bob = unique_id('alice'), unique_id('bob')
        a = await self.open_on(0, alice, bob, token=mint(SECRET, alice, bob))
        self.assertEqual(await a.recv_json(RECV), {'iceServers': [{'urls': ['stun:stun.example.org']}]})
        await self.registered(alice)
        await a.expect_nothing(SETTLE)
        b = await self.open_on(1, bob, alice, token=mint(SECRET, bob, alice))
        self.assertEqual(await b.recv_json(RECV), {'iceServers': [{'urls': ['stun:stun.example.org']}]})
        self.assertEqual(await a.recv_json(RECV), {'start': 'answer'})
        self.assertEqual(await b.recv_json(RECV), {'start': 'offer'})
        await self.assert_relays(a, b)

    async def test_a_bad_token_is_refused_on_either_node(self):
        me = unique_id('me')
        c = await self.open_on(1, me, unique_id('p'), token=mint(SECRET, 'someone-else'))
        self.assertError(await c.recv_json(RECV), 'auth-wrong-id')
        c2 = await self.open_on(0, me, unique_id('p'), token=mint('another-secret-sixteen+', me))
        self.assertError(await c2.recv_json(RECV), 'auth-invalid')
        c3 = await self.open_on(1, me, unique_id('p'))
        self.assertError(await c3.recv_json(RECV), 'auth-missing')


class TakeoverReplaceAcrossNodesTest(ClusterCase):
    nodes = 3

    async def test_an_open_on_another_node_replaces_the_older_connection(self):
        a, b = await self.cross_pair(0, 1)
        a2 = await self.open_on(2, a.name, b.name)
        self.assertError(await a.recv_json(RECV), 'replaced')
        code, rest = await a.expect_close(4001, timeout=RECV)
        self.assertEqual(rest, [], 'nothing may follow the replaced error')
        self.assertEqual(await b.recv_json(RECV), {'close': 1})
        self.assertEqual(await b.recv_json(RECV), {'start': 'answer'})
        self.assertEqual(await a2.recv_json(RECV), {'start': 'offer'})
        await self.assert_relays(a2, b, 'new')
        await b.expect_nothing(0.4)
        await a2.expect_nothing(0.1)

    async def test_replacing_a_waiting_connection_on_another_node_keeps_the_newcomer(self):
        alice, bob = unique_id('alice'), unique_id('bob')
        old = await self.open_on(0, alice, bob)
        await self.registered(alice)
        await old.expect_nothing(SETTLE)
        new = await self.open_on(1, alice, bob)
        self.assertError(await old.recv_json(RECV), 'replaced')
        await old.expect_close(4001, timeout=RECV)
        await new.expect_nothing(SETTLE)
        b = await self.open_on(0, bob, alice)
        self.assertEqual(await new.recv_json(RECV), {'start': 'answer'})
        self.assertEqual(await b.recv_json(RECV), {'start': 'offer'})


class TakeoverRefuseAcrossNodesTest(ClusterCase):
    nodes = 2
    node_args = ['--plugin-opt', 'pairing.takeover=refuse']

    async def test_an_open_on_another_node_with_a_held_id_gets_id_taken(self):
        alice, bob = unique_id('alice'), unique_id('bob')
        old = await self.open_on(0, alice, bob)
        await self.registered(alice)
        await old.expect_nothing(SETTLE)
        new = await self.open_on(1, alice, bob)
        self.assertError(await new.recv_json(RECV), 'id-taken')
        await old.expect_nothing(0.2)
        self.assertEqual(await new.ping_pong(), {'pong': 1})
        b = await self.open_on(1, bob, alice)
        self.assertEqual(await old.recv_json(RECV), {'start': 'answer'})
        self.assertEqual(await b.recv_json(RECV), {'start': 'offer'})
        await new.expect_nothing(0.2)
        await self.assert_relays(old, b)
        await new.expect_nothing(0.2)

    async def test_a_refused_newcomer_on_another_node_cannot_disturb_a_pair(self):
        a, b = await self.cross_pair(0, 1)
        intruder = await self.open_on(1, a.name, b.name)
        self.assertError(await intruder.recv_json(RECV), 'id-taken')
        await a.expect_nothing(0.2)
        await b.expect_nothing(0.1)
        await self.assert_relays(a, b)


# ---------------------------------------------------------------------------
# Failures: a node killed, Redis gone
# ---------------------------------------------------------------------------

class FreshClusterCase(ClusterCalls, DuetTestCase):
    """A fresh Redis and cluster per test (the test breaks them)."""

    def current_server(self):
        return None

    async def asyncSetUp(self):
        await super().asyncSetUp()
        require_redis()
        require_cluster_support()
        self.redis = None
        self.cluster = None

    def start_cluster(self, n, node_args=(), redis_kwargs=None):
        self.redis = RedisServer(**(redis_kwargs or {})).__enter__()
        self.cluster = Cluster(n, self.redis, COMMON_ARGS + list(node_args)).__enter__()
        return self.cluster

    async def asyncTearDown(self):
        try:
            await super().asyncTearDown()
        finally:
            try:
                if self.cluster is not None:
                    self.cluster.close()
            finally:
                if self.redis is not None:
                    self.redis.cleanup()


class DrainTest(FreshClusterCase):
    """A drained node (SIGUSR1) moves its calls that can resume to the other
    nodes: each side is closed with 1012 and resumes elsewhere; of a pair with
    both sides on the node, one side goes first and the other after its
    partner resumed. Then the node exits 0."""

    async def test_a_drained_node_moves_both_sides_of_a_call_one_after_the_other(self):
        cluster = self.start_cluster(2, ['--plugin-opt', 'pairing.resume-grace=10',
                                         '--plugin-opt', 'pairing.drain-delay=0', '--drain-timeout', '60'])
        alice_id, bob_id = unique_id('alice'), unique_id('bob')
        alice = await self.open_on(0, alice_id, bob_id, resume='')
        await self.registered(alice_id)
        await alice.expect_nothing(SETTLE)
        bob = await self.open_on(0, bob_id, alice_id, resume='')
        tokens = {alice_id: (await alice.recv_json(RECV))['resume'], bob_id: (await bob.recv_json(RECV))['resume']}
        tutorial_id = unique_id('tutorial')
        tutorial = await self.open_on(0, tutorial_id, unique_id('nobody'))  # cannot resume: it stays

        os.kill(self.node(0).pid, signal.SIGUSR1)
        # One side goes first (closed with 1012); the other stays while its partner is away.
        waits = {asyncio.ensure_future(c.expect_close(1012, timeout=RECV)): c for c in (alice, bob)}
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        task = done.pop()
        self.assertEqual(task.result()[1], [], 'nothing came before the close')
        first = waits[task]
        second = bob if first is alice else alice
        first_id, second_id = (alice_id, bob_id) if first is alice else (bob_id, alice_id)
        await second.expect_nothing(1.5)
        back = await self.open_on(1, first_id, second_id, resume=tokens[first_id])
        self.assertIn('resumed', await back.recv_json(RECV))
        self.assertIn('resumed', await second.recv_json(RECV))
        # Now the second side moves too.
        code, _ = await second.expect_close(timeout=RECV)
        self.assertEqual(code, 1012)
        back2 = await self.open_on(1, second_id, first_id, resume=tokens[second_id])
        self.assertIn('resumed', await back2.recv_json(RECV))
        self.assertIn('resumed', await back.recv_json(RECV))
        await self.assert_relays(back, back2, 'after-drain')
        # The client that cannot resume stays until it goes; then node 0 exits 0.
        await tutorial.expect_nothing(0.5)
        self.assertIsNone(self.node(0).proc.poll())
        await tutorial.close()
        self.assertEqual(self.node(0).wait(timeout=RECV), 0, self.node(0).log())
        cluster.killed.add(0)

    async def test_a_drained_node_writes_its_last_decision_before_it_exits(self):
        """The drain's last connection goes, and the node exits at once:
        the place of that connection must reach Redis first. Otherwise Redis
        says it is still connected on the node that left, and its partner
        elsewhere hears cluster-unavailable for every message until the
        node's key expires (what tests/browser/drain.test.js caught, now and
        then, during the resume's ICE restart)."""
        cluster = self.start_cluster(2, ['--plugin-opt', 'pairing.resume-grace=10',
                                         '--plugin-opt', 'pairing.drain-delay=0', '--drain-timeout', '60'])
        alice_id, bob_id = unique_id('alice'), unique_id('bob')
        bob, alice, token = await self.resumable_pair(0, 1, bob_id, alice_id)

        heard = []  # what alice hears while bob moves

        async def listen():
            while True:
                heard.append(json.loads(await alice.recv_text(timeout=60)))

        async def talk():
            for seq in itertools.count():
                await alice.send_text(ice(alice_id, bob_id, seq))
                await asyncio.sleep(0.01)

        listener, talker = asyncio.ensure_future(listen()), asyncio.ensure_future(talk())
        try:
            os.kill(self.node(0).pid, signal.SIGUSR1)
            await bob.expect_close(1012, timeout=RECV)
            # bob was node 0's last connection: the node exits by itself.
            self.assertEqual(self.node(0).wait(timeout=RECV), 0, self.node(0).log())
            cluster.killed.add(0)
            await asyncio.sleep(1.0)  # alice keeps talking to a partner who is away
            back = await self.open_on(1, bob_id, alice_id, resume=token)
            # What alice sends from now on reaches bob, in order. One sent
            # while the resume's decision was landing in Redis can come just
            # before his "resumed": node 1's copy already names him as her
            # partner then (noticed, left: see plugins/pairing/cluster/README.md).
            got = []
            while len([m for m in got if 'ice' in m]) < 3 or not any('resumed' in m for m in got):
                got.append(await back.recv_json(RECV))
            seqs = [m['ice']['seq'] for m in got if 'ice' in m]
            self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))), 'in order, none lost: %r' % got)
            self.assertEqual([m for m in got if 'ice' not in m and 'resumed' not in m], [], 'only ICE and resumed')
        finally:
            talker.cancel()
            listener.cancel()
            await asyncio.gather(talker, listener, return_exceptions=True)
        errors = [m['error']['code'] for m in heard if 'error' in m]
        self.assertTrue(errors, 'alice was told her partner is away while he moved: %r' % heard[:5])
        self.assertEqual(set(errors), {'partner-away'}, 'only partner-away while bob moved: %r' % errors)
        self.assertIn({'resumed': 'offer'}, heard)


def places_held(srv):
    """duet_cluster_places_held: the places (ids) in a node's copy."""
    return scrape(srv).samples.get(('duet_cluster_places_held', ()), None)


class CopyTest(FreshClusterCase):
    """A node's copy of the places holds its connections' and their
    partners', and lets the rest go: a partner's place kept after the call
    would never be told of again (no U frame names this node any more), and
    one per id ever met would pile up (what the soak's RSS slope showed)."""

    async def test_the_copies_let_go_of_every_place_once_the_calls_have_ended(self):
        self.start_cluster(2)
        calls = []
        for _ in range(10):
            calls.append(await self.cross_pair(0, 1))
        for a, b in calls:
            await self.assert_relays(a, b)
        await self.copies_hold(20, 'each node holding its 10 places and their 10 partners\'')
        # Each side hangs up, one node at a time: every place changes, and
        # the other node hears of each change while it still names it.
        for a, b in calls:
            await a.close()
        for a, b in calls:
            await b.close()
        await self.copies_hold(0, 'both copies empty after every call ended')

    async def copies_hold(self, n, what):
        try:
            await eventually(lambda: places_held(self.node(0)) == n and places_held(self.node(1)) == n,
                             what=what, timeout=15)
        except AssertionError as e:
            raise AssertionError('%s; the copies hold %r and %r places'
                                 % (e, places_held(self.node(0)), places_held(self.node(1)))) from None


class NodeKilledTest(FreshClusterCase):

    async def test_a_node_killed_with_sigkill_its_partners_elsewhere_hear_close_within_10_s(self):
        self.start_cluster(3)
        a, b = await self.cross_pair(0, 1)          # b's node dies
        c, d = await self.cross_pair(0, 2)          # untouched, across nodes
        e, f = await self.cross_pair(2, 2)          # untouched, one node
        t0 = time.monotonic()
        self.cluster.kill_node(1)
        self.assertEqual(await a.recv_json(NODE_DEATH_LIMIT + 1), {'close': 1})
        took = time.monotonic() - t0
        self.assertLessEqual(took, NODE_DEATH_LIMIT, 'the partner heard close after %.1f s' % took)
        await a.expect_nothing(0.3)
        for cl in (c, d, e, f):
            await cl.expect_nothing(0.1)
        await self.assert_relays(c, d)
        await self.assert_relays(e, f)
        # The dead node's ids are free: b comes back on node 2, a is still waiting.
        b2 = await self.open_on(2, b.name, a.name)
        self.assertEqual(await a.recv_json(RECV), {'start': 'answer'})
        self.assertEqual(await b2.recv_json(RECV), {'start': 'offer'})
        await self.assert_relays(a, b2)

    async def test_a_killed_node_s_resumable_client_comes_back_on_another_node_and_keeps_the_call(self):
        self.start_cluster(3, ['--plugin-opt', 'pairing.resume-grace=20'])
        alice_id, bob_id = unique_id('alice'), unique_id('bob')
        alice = await self.open_on(1, alice_id, bob_id, resume='')
        await alice.expect_nothing(SETTLE)
        bob = await self.open_on(0, bob_id, alice_id)
        token = (await alice.recv_json(RECV))['resume']
        self.assertEqual(await bob.recv_json(RECV), {'start': 'offer'})
        self.cluster.kill_node(1)
        back = await self.open_on(2, alice_id, bob_id, resume=token)
        resumed = await back.recv_json(NODE_DEATH_LIMIT)
        self.assertEqual(resumed.get('resumed'), 'answer', resumed)
        # The partner is not told close: it hears resumed.
        self.assertEqual(await bob.recv_json(NODE_DEATH_LIMIT), {'resumed': 'offer'})
        await self.assert_relays(bob, back, 'ice-restart')
        await bob.expect_nothing(0.3)

    async def test_a_killed_node_s_resumable_client_that_never_returns_ends_the_call_after_the_grace(self):
        grace = 2.0
        self.start_cluster(2, ['--plugin-opt', 'pairing.resume-grace=%s' % grace])
        alice_id, bob_id = unique_id('alice'), unique_id('bob')
        alice = await self.open_on(1, alice_id, bob_id, resume='')
        await alice.expect_nothing(SETTLE)
        bob = await self.open_on(0, bob_id, alice_id)
        await alice.recv_json(RECV)
        self.assertEqual(await bob.recv_json(RECV), {'start': 'offer'})
        t0 = time.monotonic()
        self.cluster.kill_node(1)
        self.assertEqual(await bob.recv_json(10 + grace + 3), {'close': 1})
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, grace * 0.9, 'close came before the grace period was over')
        self.assertLessEqual(took, NODE_DEATH_LIMIT + grace)


class RedisOutageTest(FreshClusterCase):

    def status(self, i):
        return healthz(self.node(i))['status']

    def metric(self, i, name):
        return scrape(self.node(i)).value(name)

    async def test_redis_stopped_and_restarted_mid_call(self):
        self.start_cluster(2)
        l0, l1 = await self.cross_pair(0, 0)        # a local pair on node 0
        x0, x1 = await self.cross_pair(0, 1)        # a cross-node pair
        await self.assert_relays(l0, l1)
        await self.assert_relays(x0, x1)

        self.redis.kill()
        for i in (0, 1):
            await eventually(lambda: self.status(i) == 'degraded', what='node %d /healthz "degraded"' % i)
            await eventually(lambda: self.metric(i, 'duet_cluster_redis_up') == 0,
                             what='node %d duet_cluster_redis_up 0' % i)
        self.cluster.assert_alive()
        # The local pair does not need Redis.
        for k in range(5):
            await l0.send_text(ice(l0.name, l1.name, k))
            await l1.send_text(ice(l1.name, l0.name, k))
        for k in range(5):
            self.assertEqual(await l1.recv_text(RECV), ice(l0.name, l1.name, k))
            self.assertEqual(await l0.recv_text(RECV), ice(l1.name, l0.name, k))
        # A message for a partner on another node cannot go: the sender is told.
        await x0.send_text(ice(x0.name, x1.name, 1))
        self.assertError(await x0.recv_json(RECV), 'cluster-unavailable')
        await x1.send_text(ice(x1.name, x0.name, 1))
        self.assertError(await x1.recv_json(RECV), 'cluster-unavailable')
        await x0.expect_nothing(0.3)
        await x1.expect_nothing(0.1)
        self.cluster.assert_alive()

        self.redis.restart()
        for i in (0, 1):
            await eventually(lambda: self.status(i) == 'ok', timeout=30,
                             what='node %d /healthz "ok" again after Redis came back' % i)
            self.assertEqual(self.metric(i, 'duet_cluster_redis_up'), 1)
            self.assertGreaterEqual(self.metric(i, 'duet_cluster_redis_reconnects_total'), 1)
        await self.assert_relays(l0, l1, 'after')
        # Cross-node pairing works again.
        y0, y1 = await self.cross_pair(1, 0)
        await self.assert_relays(y0, y1, 'after')
        for cl in (l0, l1, y0, y1):
            await cl.expect_nothing(0.1)

    async def test_a_hung_redis_blocks_nothing_and_is_noticed(self):
        # SIGSTOP: Redis keeps its sockets open but answers nothing. Only duetd's
        # own PING timeout can tell; meanwhile its loop must keep serving.
        self.start_cluster(2)
        l0, l1 = await self.cross_pair(0, 0)        # a local pair on node 0
        x0, x1 = await self.cross_pair(0, 1)        # a cross-node pair
        os.kill(self.redis.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            # The loop is not blocked: the local pair relays at once, Redis or not.
            for k in range(5):
                await l0.send_text(ice(l0.name, l1.name, k))
                self.assertEqual(await l1.recv_text(RECV), ice(l0.name, l1.name, k))
            self.assertLess(time.monotonic() - started, 2.0, 'relaying on one node waited for Redis')
            self.assertEqual(await l0.ping_pong(), {'pong': 1})
            await eventually(lambda: healthz(self.node(0))['status'] == 'degraded', timeout=10,
                             what='node 0 /healthz "degraded" while Redis hangs')
            # Once the link is given up, a message for the other node is refused in words.
            await x0.send_text(ice(x0.name, x1.name, 1))
            self.assertError(await x0.recv_json(RECV), 'cluster-unavailable')
        finally:
            os.kill(self.redis.pid, signal.SIGCONT)
        for i in (0, 1):
            await eventually(lambda: healthz(self.node(i))['status'] == 'ok', timeout=30,
                             what='node %d /healthz "ok" after Redis resumed' % i)
        await self.assert_relays(l0, l1, 'after')
        self.cluster.assert_alive()


# ---------------------------------------------------------------------------
# redis:// with a password; bad options
# ---------------------------------------------------------------------------

AUTH_FAILURE_RE = r'(?i)(WRONGPASS|NOAUTH|auth\w*|password)'


class PasswordTest(FreshClusterCase):

    async def test_redis_url_with_a_password_file_and_with_the_password_in_the_url(self):
        password = 'pw-' + unique_id('secret')
        self.redis = RedisServer(tcp=True, password=password).__enter__()
        # node 0: the password from a file; node 1: in the URL, with a DB number.
        self.cluster = Cluster(0, self.redis, COMMON_ARGS).__enter__()
        self.cluster.add_node(password_file=self.redis.password_file())
        self.cluster.add_node(url=self.redis.url_with_password(db=0))
        a, b = await self.cross_pair(0, 1)
        await self.assert_relays(a, b)
        for i in (0, 1):
            self.assertEqual(healthz(self.node(i))['status'], 'ok')
            self.assertNotIn(password, self.node(i).log(), 'node %d logged the Redis password' % i)

    async def test_a_wrong_or_missing_password_is_a_start_up_error_or_degraded_and_the_log_says_auth(self):
        password = 'pw-' + unique_id('secret')
        self.redis = RedisServer(tcp=True, password=password).__enter__()
        wrong = 'wrong-' + unique_id('pw')
        for label, extra in (('wrong password', ['--cluster-password-file',
                                                 self.redis.password_file(wrong, 'wrong')]),
                             ('no password', [])):
            srv = Server(extra_args=COMMON_ARGS + cluster_args(self.redis) + extra)
            try:
                try:
                    srv.start()
                except AssertionError:
                    self.assertNotEqual(srv.returncode, 0, label)
                    self.assertRegex(srv.log(), AUTH_FAILURE_RE, '%s: the log does not name the cause' % label)
                    continue
                await eventually(lambda: healthz(srv)['status'] == 'degraded',
                                 what='%s: /healthz "degraded"' % label)
                await eventually(lambda: re.search(AUTH_FAILURE_RE, srv.log()),
                                 what='%s: a log line naming the authentication failure' % label)
                self.assertNotIn(wrong, srv.log(), 'the wrong password was logged')
            finally:
                srv.cleanup()


class BadOptionsTest(unittest.TestCase):
    """Like every bad option (README: exit code 2, saying why)."""

    def setUp(self):
        require_cluster_support()

    def test_bad_cluster_urls_and_a_missing_password_file_exit_2_and_say_why(self):
        tmp = tempfile.mkdtemp(prefix='duet-cluster-opts-')
        try:
            for args in (['--cluster', 'http://127.0.0.1:6379'],
                         ['--cluster', 'redis://127.0.0.1:notaport'],
                         ['--cluster', 'redis://127.0.0.1:6379/notadb'],
                         ['--cluster', 'unix://'],
                         ['--cluster', 'unix:///tmp/x.sock', '--cluster-password-file',
                          os.path.join(tmp, 'missing')]):
                p = run_duetd(['--port', '0', '--state-dir', tmp] + args)
                self.assertEqual(p.returncode, 2, '%s: exit code (stderr %r)' % (args, p.stderr))
                self.assertRegex(p.stderr, r'cluster', '%s: stderr does not say why' % args)
        finally:
            shutil.rmtree(tmp, True)


if __name__ == '__main__':
    unittest.main()
