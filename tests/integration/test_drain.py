"""Draining a node (SIGUSR1): /healthz answers 503 "draining" so a balancer
sends new clients elsewhere; a client that connects anyway is told
server-draining and closed with 1012 (service restart, which the web client
reconnects on); the calls already here go on; duetd exits 0 once the last
connection has gone, or at --drain-timeout after closing the rest. Under
--workers the supervisor drains every worker and exits 0 after them.

Run: DUETD=build/core/duetd /usr/bin/python3 tests/integration/test_drain.py
"""

import json
import os
import signal
import time
import unittest

from duet_harness import WAIT, DuetTestCase, Server, run_duetd, unique_id
from test_metrics import free_port, plain_get


def health(admin):
    """(status, the JSON /healthz answered) from the admin port."""
    status, _, body = plain_get(admin[0], admin[1], '/healthz')
    return status, json.loads(body)


class DrainTest(DuetTestCase):

    def start_server(self, *args):
        self.admin = ('127.0.0.1', free_port())
        self.server = Server(extra_args=['--admin-listen', '%s:%d' % self.admin] + list(args))
        self.server.start()
        self.addCleanup(self.server.cleanup)
        return self.server

    async def paired(self):
        a_id, b_id = unique_id('alice'), unique_id('bob')
        a = await self.connect('alice')
        await a.open(a_id, b_id)
        b = await self.connect('bob')
        await b.open(b_id, a_id)
        self.assertEqual(await b.recv_json(), {'start': 'offer'})
        self.assertEqual(await a.recv_json(), {'start': 'answer'})
        return a, b, a_id, b_id

    async def test_a_drain_turns_health_away_refuses_newcomers_keeps_calls_and_exits_0_after_the_last(self):
        srv = self.start_server('--drain-timeout', '120')
        self.assertEqual(health(self.admin)[0], 200)
        a, b, a_id, b_id = await self.paired()

        os.kill(srv.pid, signal.SIGUSR1)
        srv.wait_for_log(r'SIGUSR1: draining')
        status, body = health(self.admin)
        self.assertEqual((status, body['status']), (503, 'draining'), body)
        self.assertEqual(body['connections'], 2, body)

        # A newcomer is told, and closed with 1012: never paired here.
        late = await self.connect('late')
        err = await late.recv_json()
        self.assertEqual(err['error']['code'], 'server-draining', err)
        await late.expect_close(1012)

        # The call here goes on: signaling still relays both ways.
        offer = {'sdp': {'type': 'offer', 'sdp': 'v=0'}, 'remote': a_id}
        await b.send_json(offer)
        self.assertEqual(await a.recv_json(), offer)
        ice = {'ice': {'candidate': 'candidate:1 1 udp 1 127.0.0.1 9 typ host'}, 'remote': b_id}
        await a.send_json(ice)
        self.assertEqual(await b.recv_json(), ice)
        self.assertIsNone(srv.proc.poll(), 'duetd waits while connections are open')

        # The last connections go: duetd exits 0 by itself.
        await a.close()
        await b.close()
        self.assertEqual(srv.wait(timeout=WAIT), 0, srv.log())
        self.assertRegex(srv.log(), r'drained: the last connection has gone')

    async def test_at_the_drain_timeout_the_rest_are_closed_and_duetd_exits_0(self):
        srv = self.start_server('--drain-timeout', '1.5')
        a, b, _, _ = await self.paired()
        began = time.monotonic()
        os.kill(srv.pid, signal.SIGUSR1)
        await a.expect_close(1001, timeout=WAIT)
        await b.expect_close(1001, timeout=WAIT)
        self.assertGreaterEqual(time.monotonic() - began, 1.0, 'not before the timeout')
        self.assertEqual(srv.wait(timeout=WAIT), 0, srv.log())
        self.assertRegex(srv.log(), r'drain timeout \(--drain-timeout\)')

    async def test_a_drain_with_nobody_connected_exits_0_at_once(self):
        srv = self.start_server()
        os.kill(srv.pid, signal.SIGUSR1)
        self.assertEqual(srv.wait(timeout=WAIT), 0, srv.log())

    async def test_sigterm_during_a_drain_stops_at_once(self):
        srv = self.start_server('--drain-timeout', '600')
        await self.paired()
        os.kill(srv.pid, signal.SIGUSR1)
        srv.wait_for_log(r'SIGUSR1: draining')
        os.kill(srv.pid, signal.SIGTERM)
        self.assertEqual(srv.wait(timeout=WAIT), 0, srv.log())

    async def test_a_second_sigusr1_changes_nothing(self):
        srv = self.start_server('--drain-timeout', '600')
        a, _, _, _ = await self.paired()
        os.kill(srv.pid, signal.SIGUSR1)
        srv.wait_for_log(r'SIGUSR1: draining')
        os.kill(srv.pid, signal.SIGUSR1)
        await a.expect_nothing(0.5)
        self.assertEqual(srv.log().count('SIGUSR1: draining'), 1, srv.log())
        self.assertIsNone(srv.proc.poll())


class DrainOptionTest(unittest.TestCase):

    def test_a_drain_timeout_that_is_not_a_number_of_seconds_is_refused(self):
        for bad in ('-1', 'soon', '86401'):
            proc = run_duetd(['--drain-timeout', bad, '--port', '0'])
            self.assertEqual(proc.returncode, 2, (bad, proc.stderr))
            self.assertIn('--drain-timeout', proc.stderr)

    def test_help_explains_the_drain(self):
        proc = run_duetd(['--help'])
        self.assertEqual(proc.returncode, 0)
        self.assertRegex(proc.stdout, r'--drain-timeout[^\n]*\n?[^\n]*SIGUSR1')


if __name__ == '__main__':
    unittest.main()
