"""The keepalive plugin against a real duetd: JSON ping and pong, the server's
own pings (JSON and WebSocket ping frames), closing connections that show no
sign of life, and its options.

Most tests run duetd with a 0.2 s interval and a 1 s timeout so they finish
quickly; every time window they check is several intervals wide, so a loaded
machine makes them slower, not flaky.

Run: DUETD=build/core/duetd /usr/bin/python3 tests/integration/test_keepalive.py
"""

import asyncio
import contextlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import websockets.exceptions
import websockets.frames

from duet_harness import DuetTestCase, Server, raw_request, run_duetd, SharedServerTestCase, unique_id

# Short, to keep the suite quick, but not so short that a test's own
# clients, answering pings from a starved Python loop on a loaded machine,
# are taken for dead (1 s was: a clean-clone run under load lost a partner).
INTERVAL = 0.4
TIMEOUT = 2.5
FAST_ARGS = ['--plugin-opt', 'keepalive.interval=%g' % INTERVAL,
             '--plugin-opt', 'keepalive.timeout=%g' % TIMEOUT]

SERVER_PING = {'ping': 1}
# How long a silent client may take to be closed and its partner told: the
# timeout, one interval until its slot comes round, and ample slack for a
# slow close handshake and a loaded machine.
CLOSE_DEADLINE = TIMEOUT + INTERVAL + 8.0


class SharedServerCase(SharedServerTestCase):
    """One duetd per class, started with server_args; tests use unique ids."""

    server_args = []

    async def pair(self, local=None, remote=None, server=None):
        """As the harness's pair, but the server's JSON pings (every 0.2 s
        here) may arrive before or between the starts on a busy machine."""
        local = local or unique_id('a')
        remote = remote or unique_id('b')
        a = await self.connect(local, server=server)
        await a.open(local, remote)
        b = await self.connect(remote, server=server)
        await b.open(remote, local)
        self.assertEqual(await recv_besides_pings(a, 10), {'start': 'answer'}, 'waiting peer')
        self.assertEqual(await recv_besides_pings(b, 10), {'start': 'offer'}, 'newcomer')
        return a, b


async def recv_besides_pings(client, timeout):
    """The first message that is not the server's {"ping":1}."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError('%s: nothing but pings arrived within %.1f s' % (client.name, timeout))
        got = await client.recv_json(left)
        if got != SERVER_PING:
            return got


async def collect_for(client, seconds):
    """Every message that arrives within seconds (a close fails the test)."""
    seen = []
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return seen
        try:
            seen.append(await asyncio.wait_for(client.ws.recv(), left))
        except asyncio.TimeoutError:
            return seen
        except websockets.exceptions.ConnectionClosed as e:
            raise AssertionError('%s: the server closed the connection (code %s, reason %r) after %r'
                                 % (client.name, e.rcvd.code if e.rcvd else None,
                                    e.rcvd.reason if e.rcvd else None, seen))


async def ping_pong(client):
    """Round-trips a JSON ping past the server's own pings; proves the
    connection is open and usable."""
    await client.send_json({'ping': 1})
    return await recv_besides_pings(client, 2)


@contextlib.contextmanager
def quiet_asyncio_warnings():
    """Hides asyncio's "SSL connection is closed" warnings, which a client
    that resumes reading after the server hung up logs when it answers the
    pings it finds in its buffer."""
    asyncio_logger = logging.getLogger('asyncio')
    level = asyncio_logger.level
    asyncio_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        asyncio_logger.setLevel(level)


def count_ping_frames(client):
    """Counts the WebSocket ping frames client receives from now on.

    websockets answers ping frames itself and offers no hook, so this wraps
    the method its reader calls for every frame."""
    counter = {'pings': 0}
    read_frame = client.ws.read_frame

    async def counting_read_frame(max_size):
        frame = await read_frame(max_size)
        if frame.opcode == websockets.frames.Opcode.PING:
            counter['pings'] += 1
        return frame

    client.ws.read_frame = counting_read_frame
    return counter


def stop_answering_ping_frames(client):
    """Makes client keep reading but never answer a ping frame: from then on
    it sends the server nothing at all."""
    async def no_pong(data=b''):
        return None

    client.ws.pong = no_pong


class JsonPingAndPongTest(SharedServerCase):
    """With the default 30 s interval no server ping gets in the way."""

    async def test_a_json_ping_is_answered_with_pong(self):
        c = await self.connect('pinger')
        await c.send_json({'ping': 1})
        self.assertEqual(await c.recv_json(), {'pong': 1})
        await c.expect_nothing(0.3)

    async def test_a_json_ping_is_answered_before_open_and_while_paired(self):
        lone = await self.connect('lone')
        await lone.send_text('{"ping":1}')
        self.assertEqual(await lone.recv_json(), {'pong': 1})
        a, b = await self.pair()
        await b.send_text('{"ping":1}')
        self.assertEqual(await b.recv_json(), {'pong': 1})
        await a.expect_nothing(0.3)

    async def test_a_pong_from_the_client_is_swallowed(self):
        a, b = await self.pair()
        await a.send_text('{"pong":1}')
        # Neither an answer, nor an error, nor anything for the partner.
        await a.expect_nothing(0.5)
        await b.expect_nothing(0.1)
        self.assertEqual(await a.ping_pong(), {'pong': 1})


class KeepaliveAloneTest(DuetTestCase):

    async def test_keepalive_answers_ping_without_the_pairing_plugin(self):
        with Server(extra_args=['--no-default-plugins', '--plugin', 'keepalive']) as srv:
            c = await self.connect('alone', server=srv)
            await c.send_text('{"ping":1}')
            self.assertEqual(await c.recv_json(), {'pong': 1})
            await c.send_text('{"pong":1}')
            await c.expect_nothing(0.3)
            # Everything else is still refused: keepalive passes it on.
            await c.send_json({'open': {'local': 'x', 'remote': 'y'}})
            self.assertError(await c.recv_json(), 'unknown-type')
            await c.close()


class TcpKeepaliveTest(DuetTestCase):
    """Without any plugin that pings, the kernel still finds a peer that
    vanished without FIN or RST: accepted sockets have TCP keepalive on."""

    async def test_accepted_sockets_probe_after_five_idle_minutes(self):
        with Server(extra_args=['--no-default-plugins', '--plugin', 'pairing']) as srv:
            c = await self.connect('tcp-keepalive', server=srv)
            await c.open(unique_id('k'), unique_id('nobody'))
            client_port = c.ws.transport.get_extra_info('sockname')[1]
            # ss shows the server's side of this connection with its timer.
            out = subprocess.run(['ss', '-tnoH', 'state', 'established', '( sport = :%d and dport = :%d )'
                                  % (srv.port, client_port)], capture_output=True, text=True, check=True).stdout
            m = re.search(r'timer:\(keepalive,(?:(\d+)min)?([\d.]+)m?sec', out)
            self.assertIsNotNone(m, 'no keepalive timer on the server socket: %r' % out)
            seconds = int(m.group(1) or 0) * 60 + float(m.group(2))
            self.assertTrue(240 < seconds <= 300, 'keepalive fires in %.0f s, expected about 300: %r'
                            % (seconds, out))
            await c.close()


class ServerPingTest(SharedServerCase):

    server_args = FAST_ARGS

    async def test_the_server_sends_a_json_ping_every_interval(self):
        c = await self.connect('counted')
        window = 15 * INTERVAL
        seen = await collect_for(c, window)
        self.assertTrue(all(m == '{"ping":1}' for m in seen), seen)
        # One ping per interval; a slow machine may lose some, but never adds any.
        self.assertGreaterEqual(len(seen), 3, 'only %d pings in %.1f s' % (len(seen), window))
        self.assertLessEqual(len(seen), window / INTERVAL + 2, seen)

    async def test_the_server_sends_a_websocket_ping_frame_every_interval(self):
        c = await self.connect('framed')
        frames = count_ping_frames(c)
        window = 15 * INTERVAL
        json_pings = await collect_for(c, window)
        self.assertGreaterEqual(frames['pings'], 3,
                                'only %d ping frames in %.1f s' % (frames['pings'], window))
        self.assertLessEqual(frames['pings'], window / INTERVAL + 2)
        # Each JSON ping goes out with its ping frame.
        self.assertLessEqual(abs(frames['pings'] - len(json_pings)), 1, (frames, json_pings))

    async def test_a_client_that_answers_only_ping_frames_stays_open_over_many_timeouts(self):
        a, b = await self.pair()
        # Neither side sends a message: their only signs of life are the pong
        # frames websockets answers to the server's ping frames.
        seen_a, seen_b = await asyncio.gather(collect_for(a, 5 * TIMEOUT), collect_for(b, 5 * TIMEOUT))
        self.assertTrue(all(m == '{"ping":1}' for m in seen_a + seen_b), (seen_a, seen_b))
        self.assertTrue(a.is_open and b.is_open)
        # Both are still paired: the relay works.
        sdp = {'sdp': {'type': 'offer', 'sdp': 'v=0'}, 'remote': a.name}
        await b.send_json(sdp)
        self.assertEqual(await recv_besides_pings(a, 2), sdp)

    async def test_a_json_ping_is_answered_with_pong_among_the_server_pings(self):
        c = await self.connect('busy')
        for _ in range(3):
            self.assertEqual(await ping_pong(c), {'pong': 1})


class DeadPeerTest(SharedServerCase):

    server_args = FAST_ARGS

    async def silence_until_closed(self, silence):
        """Pairs two clients, makes the newcomer silent with silence(client),
        and waits until its partner is told. Returns (partner, silent one,
        seconds until the partner heard {"close":1})."""
        a, b = await self.pair()
        silence(b)
        started = time.monotonic()
        self.assertEqual(await recv_besides_pings(a, CLOSE_DEADLINE), {'close': 1})
        return a, b, time.monotonic() - started

    async def test_a_client_that_reads_but_never_answers_is_closed_and_its_partner_told(self):
        a, b, took = await self.silence_until_closed(stop_answering_ping_frames)
        code, seen = await b.expect_close()
        self.assertEqual(code, 4408)
        self.assertEqual(b.ws.close_reason, 'no sign of life')
        self.assertTrue(all(m == '{"ping":1}' for m in seen), seen)
        self.assertGreaterEqual(took, TIMEOUT - INTERVAL)
        self.assertEqual(await ping_pong(a), {'pong': 1})

    async def test_a_client_that_stopped_reading_is_closed_and_its_partner_told_in_time(self):
        # The transport stops reading, as a frozen tab or a dead network does:
        # no pong, no message, and the server's close frame goes unanswered.
        # Waiting for that answer must not delay the partner's notice.
        a, b, took = await self.silence_until_closed(lambda c: c.ws.transport.pause_reading())
        self.assertLessEqual(took, TIMEOUT + INTERVAL + 2.0,
                             'the partner heard {"close":1} %.1f s after its peer went silent; the '
                             'timeout is %.1f s and the interval %.1f s' % (took, TIMEOUT, INTERVAL))
        with quiet_asyncio_warnings():
            # What the server sent meanwhile ends with its close frame.
            b.ws.transport.resume_reading()
            code, _ = await b.expect_close()
        self.assertEqual(code, 4408)
        self.assertEqual(await ping_pong(a), {'pong': 1})

    async def test_the_id_of_a_client_closed_for_silence_is_free_for_a_new_connection(self):
        a, b, _ = await self.silence_until_closed(stop_answering_ping_frames)
        # The tutorial client reconnects and opens again with the same ids.
        again = await self.connect(b.name)
        await again.open(b.name, a.name)
        self.assertEqual(await recv_besides_pings(a, 2), {'start': 'answer'})
        self.assertEqual(await recv_besides_pings(again, 2), {'start': 'offer'})
        ice = {'ice': {'candidate': 'candidate:1 1 UDP 1 192.0.2.1 1 typ host'}, 'remote': a.name}
        await again.send_json(ice)
        self.assertEqual(await recv_besides_pings(a, 2), ice)

    async def test_closes_for_silence_and_pings_are_counted_in_metrics(self):
        before = metrics(self.server)
        await self.silence_until_closed(stop_answering_ping_frames)
        after = metrics(self.server)
        self.assertGreaterEqual(after['duet_keepalive_timeouts_total'],
                                before['duet_keepalive_timeouts_total'] + 1)
        self.assertGreater(after['duet_keepalive_pings_sent_total'],
                           before['duet_keepalive_pings_sent_total'])
        self.server.wait_for_log(r'keepalive: connection \d+ \(127\.0\.0\.1\) sent nothing for \d+ ms')


def metrics(server):
    """The /metrics counters whose names start with duet_keepalive_."""
    response = raw_request(server, ('GET', '/metrics'))
    if response.status != 200:
        raise AssertionError('GET /metrics answered %s' % response.status)
    text = response.body.decode()
    found = {name: int(value) for name, value in
             re.findall(r'^(duet_keepalive_\w+) (\d+)$', text, re.M)}
    for name in ('duet_keepalive_timeouts_total', 'duet_keepalive_pings_sent_total'):
        if name not in found:
            raise AssertionError('%s missing from /metrics:\n%s' % (name, text))
    return found


class OptionsTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='duet-keepalive-')
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.web = os.path.join(self.tmp, 'web')
        os.makedirs(self.web)

    def run_with(self, *options):
        args = ['--list-plugins', '--address', '127.0.0.1', '--port', '0',
                '--state-dir', os.path.join(self.tmp, 'state'), '--web-root', self.web]
        for option in options:
            args += ['--plugin-opt', 'keepalive.' + option]
        return run_duetd(args)

    def test_list_plugins_shows_keepalive_before_pairing_with_its_options(self):
        proc = self.run_with()
        self.assertEqual(proc.returncode, 0, proc.stderr)
        names = [line.split()[0] for line in proc.stdout.splitlines() if not line.startswith(' ')]
        self.assertIn('keepalive', names, proc.stdout)
        self.assertIn('pairing', names, proc.stdout)
        # keepalive must see ping and pong before any other plugin.
        self.assertLess(names.index('keepalive'), names.index('pairing'), proc.stdout)
        self.assertRegex(proc.stdout, r'--plugin-opt keepalive\.interval=VALUE .*\(default: 30\)')
        self.assertRegex(proc.stdout, r'--plugin-opt keepalive\.timeout=VALUE .*\(default: 3 intervals\)')

    def test_fractional_seconds_and_counts_of_intervals_are_accepted(self):
        for options in [('interval=0.05',), ('interval=3600',), ('interval=0.2', 'timeout=0.2'),
                        ('interval=0.2', 'timeout=2.5 intervals'), ('timeout=86400',),
                        ('interval=10', 'timeout=1 interval'), ('interval=10', 'timeout=1.5 intervals'),
                        ('interval=5s',), ('interval=250ms', 'timeout=2m'), ('timeout=1d',)]:
            with self.subTest(options=options):
                proc = self.run_with(*options)
                self.assertEqual(proc.returncode, 0, proc.stderr)

    def test_a_bad_interval_makes_duetd_exit_2_and_say_why(self):
        for value in ['x', '', '0', '0.01', '-1', '3601', '1e3', 'nan', 'inf', '+5', ' 5', '5 s',
                      '0x10', '1.2.3', '2h', '49ms', 's', '5sec']:
            with self.subTest(value=value):
                proc = self.run_with('interval=' + value)
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertIn("interval must be a duration from 0.05 to 3600 seconds", proc.stderr)
                self.assertIn("not '%s' (--plugin-opt keepalive.interval)" % value, proc.stderr)

    def test_a_bad_timeout_makes_duetd_exit_2_and_say_why(self):
        for value in ['x', '', '-1', '1e3', 'intervals', ' intervals', '3  intervals', '3 hours', 'nan']:
            with self.subTest(value=value):
                proc = self.run_with('timeout=' + value)
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertIn("timeout must be a number of seconds or of intervals", proc.stderr)
                self.assertIn("not '%s'" % value, proc.stderr)

    def test_a_timeout_shorter_than_one_interval_makes_duetd_exit_2(self):
        for options in [('interval=10', 'timeout=9.5'), ('interval=1', 'timeout=0.5 intervals'),
                        ('interval=100',  'timeout=90'), ('timeout=86401',), ('timeout=0',)]:
            with self.subTest(options=options):
                proc = self.run_with(*options)
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertIn('timeout must be at least one interval', proc.stderr)

    def test_an_undeclared_option_makes_duetd_exit_2(self):
        proc = self.run_with('slots=5')
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn('interval', proc.stderr)
        self.assertIn('timeout', proc.stderr)


if __name__ == '__main__':
    unittest.main(verbosity=2)
