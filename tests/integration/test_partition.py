"""A node cut off from Redis but not from its clients (issue 26): a network
partition, made by a TCP proxy of the test's own between node 0 and Redis
that stops passing bytes (both ways, connections left open, as when a link
goes down) and later passes what it held (as TCP would once the link is
back). Node 1 reaches Redis directly.

What must hold (plugins/pairing/cluster/README.md, "Partitions"):
- the cut node keeps its own pairs going and answers cluster-unavailable for
  partners elsewhere; /healthz says degraded;
- the other node frees the cut node's ids after its key expires: partners
  there hear {"close":1} within the node-death bound;
- an id opened on the live node meanwhile keeps its place when the cut heals:
  the cut node's stale connection for it is told `replaced` and closed, and
  nothing it sends reaches anyone; Redis holds the id once, for the new one;
- a slow Redis (the proxy holding each chunk 0.5 s) does not slow relaying
  between two clients on one node.

Run: DUETD=build/core/duetd /usr/bin/python3 tests/integration/test_partition.py
"""

import socket
import sys
import threading
import time
import unittest

from duet_harness import Closed, DuetTestCase, eventually, unique_id
from redis_harness import Cluster, RedisServer, free_tcp_port, require_cluster_support, require_redis
from test_cluster import COMMON_ARGS, NODE_DEATH_LIMIT, RECV, SETTLE, ClusterCalls, ice
from test_metrics import healthz


SLOW_REDIS = 0.5


class PartitionProxy:
    """127.0.0.1:port -> Redis. cut(): bytes stop both ways (held, not lost);
    heal(): what was held goes on; delay: seconds each chunk is held (a slow
    Redis). Threads of ours, stopped by close()."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.port = free_tcp_port()
        self.listener = socket.create_server(('127.0.0.1', self.port))
        self.passing = threading.Event()
        self.passing.set()
        self.delay = 0.0
        self.closed = False
        self.sockets = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self):
        self.passing.clear()

    def heal(self):
        self.passing.set()

    def close(self):
        self.closed = True
        self.passing.set()
        self.listener.close()
        with self.lock:
            for s in self.sockets:
                try:
                    s.close()
                except OSError:
                    pass

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(('127.0.0.1', self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b''
            self.passing.wait()  # a cut holds what arrived; a heal lets it through, in order
            if self.delay and data:
                time.sleep(self.delay)
            if self.closed:
                return
            try:
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
            except OSError:
                return


class PartitionTest(ClusterCalls, DuetTestCase):

    def current_server(self):
        return None

    async def asyncSetUp(self):
        await super().asyncSetUp()
        require_redis()
        require_cluster_support()
        self.redis = RedisServer(tcp=True).__enter__()
        self.proxy = PartitionProxy(self.redis.port)
        self.cluster = Cluster(0, self.redis, COMMON_ARGS)
        # Node 0 reaches Redis through the proxy, node 1 directly.
        self.cluster.add_node(url='redis://127.0.0.1:%d' % self.proxy.port)
        self.cluster.add_node()

    async def asyncTearDown(self):
        try:
            await super().asyncTearDown()
            self.proxy.heal()
            self.cluster.close()
        finally:
            self.proxy.close()
            self.redis.cleanup()

    async def test_a_cut_node_keeps_its_pairs_and_on_healing_an_id_taken_meanwhile_stays_with_the_newcomer(self):
        l0, l1 = await self.cross_pair(0, 0)          # both on the node to be cut
        x0, x1 = await self.cross_pair(0, 1)          # across the cut
        await self.assert_relays(l0, l1)
        await self.assert_relays(x0, x1)

        self.proxy.cut()
        t_cut = time.monotonic()
        await eventually(lambda: healthz(self.node(0))['status'] == 'degraded', timeout=15,
                         what='node 0 /healthz "degraded" once cut off from Redis')
        # The other node frees the cut node's ids: x1 hears the call end.
        self.assertEqual(await x1.recv_json(NODE_DEATH_LIMIT + 5), {'close': 1})
        freed_after = time.monotonic() - t_cut
        self.assertLessEqual(freed_after, NODE_DEATH_LIMIT + 3, 'x1 heard the end %.1f s after the cut' % freed_after)
        sys.stderr.write('\n  the live node ended the call across the cut %.2f s after it\n' % freed_after)
        # The cut node's own pair goes on; a message across the cut is refused in words.
        await self.assert_relays(l0, l1, 'during')
        await x0.send_text(ice(x0.name, x1.name, 1))
        self.assertError(await x0.recv_json(RECV), 'cluster-unavailable')

        # On the live node, someone opens x0's id and is paired with a new partner.
        y = await self.open_on(1, unique_id('y'), x0.name)
        await self.registered(y.name)
        await y.expect_nothing(SETTLE)
        x0_new = await self.open_on(1, x0.name, y.name)
        self.assertEqual(await y.recv_json(RECV), {'start': 'answer'})
        self.assertEqual(await x0_new.recv_json(RECV), {'start': 'offer'})
        taken = self.redis.place(x0.name)

        self.proxy.heal()
        t_heal = time.monotonic()
        await eventually(lambda: healthz(self.node(0))['status'] == 'ok', timeout=30,
                         what='node 0 /healthz "ok" after the cut healed')
        # The stale connection for x0's id is told it was replaced, and closed.
        try:
            got = await x0.recv_json(RECV)
        except AssertionError as e:
            raise AssertionError('%s\nnode 0 log:\n%s' % (e, self.node(0).log()[-6000:])) from None
        self.assertError(got, 'replaced')
        sys.stderr.write('  the stale connection was told replaced %.2f s after the heal\n'
                         % (time.monotonic() - t_heal))
        with self.assertRaises(Closed) as closed:
            await x0.recv_json(RECV)
        self.assertEqual(closed.exception.code, 4001)
        # Redis holds the id once, for the newcomer on node 1.
        now = self.redis.place(x0.name)
        self.assertEqual({k: now.get(k) for k in ('c', 'l', 'r', 'p')}, {k: taken.get(k) for k in ('c', 'l', 'r', 'p')},
                         'x0\'s place (its connection, ids and partner) is the newcomer\'s still')
        await self.assert_relays(y, x0_new, 'after')
        await self.assert_relays(l0, l1, 'after')
        for c in (l0, l1, y, x0_new):
            await c.expect_nothing(0.3)

    async def test_a_slow_redis_does_not_slow_relaying_on_one_node(self):
        # Every reply from Redis to node 0 comes SLOW_REDIS late: anything that
        # waited on Redis would take that long per step.
        l0, l1 = await self.cross_pair(0, 0)
        self.proxy.delay = SLOW_REDIS
        rounds = 10
        started = time.monotonic()
        for k in range(rounds):
            await l0.send_text(ice(l0.name, l1.name, k))
            self.assertEqual(await l1.recv_text(RECV), ice(l0.name, l1.name, k))
            await l1.send_text(ice(l1.name, l0.name, k))
            self.assertEqual(await l0.recv_text(RECV), ice(l1.name, l0.name, k))
        took = time.monotonic() - started
        sys.stderr.write('\n  %d round trips on one node with Redis %.1f s slow: %.3f s\n' % (rounds, SLOW_REDIS, took))
        # Waiting on Redis once per message would take 2 x rounds x SLOW_REDIS.
        self.assertLess(took, rounds * SLOW_REDIS / 2, 'relaying on one node waited for Redis')
        self.proxy.delay = 0.0
        x0, x1 = await self.cross_pair(0, 1)  # and the cluster still works across nodes
        await self.assert_relays(x0, x1)


if __name__ == '__main__':
    unittest.main(verbosity=2)
