"""Floods against the real duetd: the open-files limit reached, repeated
warnings of every kind, and slow readers that together would hold more
memory than --max-queued-bytes-total allows. In each, duetd must stay cheap
(CPU time read from /proc/PID/stat, never wall-clock assertions), keep its
log short, and serve new clients normally once the flood ends.
Run: DUETD=build/core/duetd /usr/bin/python3 tests/integration/test_floods.py
"""

import asyncio
import contextlib
import json
import os
import re
import socket
import ssl
import time
import unittest

from duet_harness import DuetTestCase, Server, eventually, ssl_context, unique_id
from test_limits import raw_websocket, ws_text_frame
from test_metrics import scrape

CLOCK_TICKS = os.sysconf('SC_CLK_TCK')
LOG_LINE_RE = re.compile(r'^\S+ duetd (error|warn|info|debug): ', re.M)


def cpu_seconds(pid):
    """User plus system CPU time the process has used, from /proc/PID/stat."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def open_files_limits(pid):
    """(soft, hard) 'Max open files' of a process, from /proc/PID/limits."""
    with open('/proc/%d/limits' % pid) as f:
        for line in f:
            if line.startswith('Max open files'):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError('/proc/%d/limits has no "Max open files" line' % pid)


def limited(shell_ulimit):
    """A wrapper that starts duetd from a shell with this ulimit applied."""
    return ['sh', '-c', 'ulimit %s && exec "$@"' % shell_ulimit, 'sh']


def log_lines(text):
    return LOG_LINE_RE.findall(text)


def silent_sockets(host, port, count):
    """count TCP connections that never send a byte (their TLS never starts).
    Connects that the server's full backlog leaves pending are fine."""
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect((host, port))
        socks.append(s)
    return socks


async def settle_and_measure_cpu(srv, seconds):
    """CPU seconds duetd spends over the next `seconds` of wall time."""
    before = cpu_seconds(srv.pid)
    await asyncio.sleep(seconds)
    return cpu_seconds(srv.pid) - before


async def wait_until_serving(test, srv, timeout=60.0):
    """A fresh pair relays a message, retried while descriptors are freed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await test.assert_server_still_pairs(server=srv)
            return
        except (AssertionError, OSError, asyncio.TimeoutError, ssl.SSLError) as e:
            if time.monotonic() > deadline:
                raise AssertionError('duetd did not serve a call within %.0f s after the flood ended: %s\n'
                                     'log:\n%s' % (timeout, e, srv.log()[-5000:]))
            await asyncio.sleep(0.2)


class OpenFilesLimitTest(DuetTestCase):
    """duetd runs with 64 descriptors; 300 clients connect and say nothing."""

    FLOOD = 300

    async def test_at_the_open_files_limit_duetd_sheds_connections_without_spinning_or_flooding_the_log(self):
        srv = Server(extra_args=['--http-timeout', '120'], wrapper=limited('-n 64'))
        with srv:
            self.server = srv
            self.assertEqual(open_files_limits(srv.pid), (64, 64))
            lines_at_start = len(log_lines(srv.log()))
            socks = silent_sockets(srv.host, srv.port, self.FLOOD)
            try:
                # The flood arrives and duetd runs out of descriptors.
                await eventually(lambda: 'cannot accept' in srv.log(), what='the open-files limit')
                cpu = await settle_and_measure_cpu(srv, 5.0)
                flood_log = srv.log()
                new_lines = len(log_lines(flood_log)) - lines_at_start
                srv.assert_alive()
                self.assertTrue('cannot accept' in flood_log and 'file' in flood_log,
                                'the test never brought duetd to its open-files limit')
                self.assertLess(cpu, 0.25, 'duetd used %.2f s of CPU in 5 s at the open-files limit (a busy '
                                'loop?); log tail:\n%s' % (cpu, flood_log[-3000:]))
                self.assertLess(new_lines, 30, 'duetd wrote %d log lines at the open-files limit:\n%s'
                                % (new_lines, flood_log[-5000:]))
            finally:
                for s in socks:
                    s.close()
            # Descriptors free up as the silent sockets close: new clients
            # are served again without anyone touching duetd.
            await wait_until_serving(self, srv)
            s = scrape(srv)
            self.assertGreater(s.value('duet_accept_pauses_total'), 0, s.text)
            self.assertGreater(s.value('duet_connections_shed_total'), 0, s.text)
            self.assertEqual(s.value('duet_open_files_limit'), 64, s.text)


class SoftLimitTest(DuetTestCase):

    def setUp(self):
        # Raising the hard limit to 4096 needs root where it is lower now.
        import resource
        if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 4096 and os.geteuid() != 0:
            self.skipTest('the hard open-files limit is below 4096 and this is not root')

    async def test_the_soft_open_files_limit_is_raised_to_the_hard_limit(self):
        srv = Server(wrapper=limited('-S -n 256 && ulimit -H -n 4096'))
        with srv:
            self.server = srv
            self.assertEqual(open_files_limits(srv.pid), (4096, 4096))
            self.assertRegex(srv.log(), r'open-files limit: 4096 \(raised from 256\)')
            # 4096 is below what the default --max-connections needs.
            self.assertRegex(srv.log(), r'below what --max-connections 10000 needs .*LimitNOFILE=10240')
            await self.assert_server_still_pairs(server=srv)

    async def test_a_limit_that_fits_max_connections_gets_no_warning(self):
        srv = Server(extra_args=['--max-connections', '500'], wrapper=limited('-S -n 256 && ulimit -H -n 4096'))
        with srv:
            self.server = srv
            self.assertEqual(open_files_limits(srv.pid)[0], 4096)
            self.assertNotIn('below what --max-connections', srv.log())


def bad_origin_upgrade(srv):
    """A WebSocket upgrade from a page of another site; returns the status line."""
    sock = socket.create_connection((srv.host, srv.port), timeout=5)
    with ssl_context(srv.ca_file, alpn=None).wrap_socket(sock, server_hostname='localhost') as tls:
        tls.sendall(('GET / HTTP/1.1\r\nHost: localhost:%d\r\nOrigin: https://evil.example\r\n'
                     'Upgrade: websocket\r\nConnection: Upgrade\r\n'
                     'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'
                     % srv.port).encode())
        with contextlib.suppress(OSError, ssl.SSLError):
            return tls.recv(200).split(b'\r\n')[0]
    return b''


def failed_tls_handshake(srv):
    """A connection that sends a broken TLS record instead of a ClientHello."""
    with socket.create_connection((srv.host, srv.port), timeout=5) as sock:
        sock.sendall(b'\x16\x03\x01\x00\x10' + b'\xff' * 16)
        with contextlib.suppress(OSError):
            sock.recv(100)


class RepeatedWarningsTest(DuetTestCase):
    """Each kind of warning a client can cause, 150 times over: a line or two
    each, then one summary with the count."""

    N = 150

    def count(self, log, pattern):
        return len(re.findall(pattern, log))

    async def test_every_kind_of_repeated_warning_is_logged_once_then_summarized(self):
        srv = Server(extra_args=['--max-connections', '2', '--log-level', 'info'])
        with srv:
            self.server = srv
            start_lines = len(log_lines(srv.log()))
            for _ in range(self.N):
                await asyncio.to_thread(bad_origin_upgrade, srv)
                await asyncio.to_thread(failed_tls_handshake, srv)
            holders = [await self.connect('hold%d' % i, server=srv) for i in range(2)]
            for _ in range(self.N // 5):
                c = await self.connect('extra', server=srv)
                self.assertError(await c.recv_json(), 'server-full')
                await c.expect_close(1013)
            log = srv.log()
            # A slow machine may spread the flood over two 10-s windows: a
            # line in full per window at most.
            self.assertLessEqual(self.count(log, r'refused a WebSocket from origin'), 2, log[-4000:])
            self.assertLessEqual(self.count(log, r'refused: server-full'), 2, log[-4000:])
            tls_lines = self.count(log, r'dropped a new connection|libwebsockets: ')
            self.assertLessEqual(tls_lines, 12, log[-4000:])
            flood_lines = len(log_lines(log)) - start_lines
            self.assertLess(flood_lines, 24, 'the flood of %d of each kind wrote %d lines:\n%s'
                            % (self.N, flood_lines, log[-5000:]))
            # Once the interval is over, each kind that was cut short gets a
            # line with the count, even though the flood has stopped: every
            # warning is either written or counted.
            for kind, pattern, n in (('refused origin', r'refused a WebSocket from origin', self.N),
                                     ('server full', r'refused: server-full', self.N // 5)):
                summary = r'suppressed (\d+) more "%s" line' % kind
                await eventually(lambda: self.count(srv.log(), pattern) +
                                 sum(int(x) for x in re.findall(summary, srv.log())) == n,
                                 timeout=30, what='every "%s" warning written or counted' % kind)
            s = scrape(srv)
            self.assertGreaterEqual(s.value('duet_log_lines_suppressed_total'), self.N - 1 + self.N // 5 - 1, s.text)
            for c in holders:
                await c.close()


SDP_BYTES = 60000
PER_CONN = 1024 * 1024
TOTAL = 1536 * 1024


class SendBudgetTest(DuetTestCase):
    """Four clients that never read, each under --max-queued-bytes, together
    over --max-queued-bytes-total."""

    async def test_slow_readers_together_stay_within_the_total_and_the_heaviest_goes_first(self):
        srv = Server(extra_args=['--max-queued-bytes', str(PER_CONN), '--max-queued-bytes-total', str(TOTAL),
                                 '--max-messages-per-second', '100000'])
        with srv:
            self.server = srv
            pairs = []
            for i in range(4):
                slow_id, fast_id = unique_id('slow%d' % i), unique_id('fast%d' % i)
                slow = await asyncio.to_thread(raw_websocket, srv)
                self.addCleanup(slow.close)
                before = scrape(srv).value('duet_messages_received_total')
                slow.sendall(ws_text_frame(json.dumps({'open': {'local': slow_id, 'remote': fast_id}})))
                await eventually(lambda: scrape(srv).value('duet_messages_received_total') > before,
                                 what="the slow reader's open")
                fast = await self.connect(fast_id, server=srv)
                await fast.open(fast_id, slow_id)
                self.assertEqual(await fast.recv_json(), {'start': 'offer'})
                pairs.append((slow_id, fast))
            told = []  # indexes of pairs whose sender heard {"close":1}, in order

            async def watch(i, fast):
                with contextlib.suppress(AssertionError):
                    while True:
                        if await fast.recv_json(timeout=30) == {'close': 1}:
                            told.append(i)
                            return

            watchers = [asyncio.create_task(watch(i, f)) for i, (_, f) in enumerate(pairs)]
            # Pair 0 sends three messages for every one of the others: it is
            # the heaviest when the total is reached.
            deadline = time.monotonic() + 30
            sent = 0
            while len(told) < 2 and sent < 400 and time.monotonic() < deadline:
                for i, (slow_id, fast) in enumerate(pairs):
                    if i in told:
                        continue
                    for _ in range(3 if i == 0 else 1):
                        msg = {'sdp': {'type': 'offer', 'sdp': 'v=0 %d ' % sent + 's' * SDP_BYTES}, 'remote': slow_id}
                        await fast.send_json(msg)
                sent += 1
                await asyncio.sleep(0.01)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*watchers), 3)
            for w in watchers:
                w.cancel()
            s = scrape(srv)
            self.assertGreaterEqual(len(told), 2, 'fewer than two slow readers were dropped after %d rounds:\n%s'
                                    % (sent, s.text))
            self.assertEqual(told[0], 0, 'the heaviest slow reader was not the first dropped')
            self.assertLessEqual(s.value('duet_send_queue_bytes_peak'), TOTAL, s.text)
            self.assertGreater(s.value('duet_send_queue_bytes_peak'), TOTAL - 2 * SDP_BYTES, s.text)
            self.assertGreaterEqual(s.value('duet_send_budget_closes_total'), 1, s.text)
            self.assertLessEqual(len(re.findall(r'--max-queued-bytes-total', srv.log())), 1, srv.log()[-4000:])
            await self.assert_server_still_pairs(server=srv)


if __name__ == '__main__':
    unittest.main()
