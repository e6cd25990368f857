"""Resource limits: connection caps (in all and per address), the per-connection
message rate, the queue for a client that does not read, id length and
content, the open timeout, the HTTP/TLS timeout (slowloris) and the header
size cap. After each limit is hit the server must go on serving new clients.

Run: DUETD=build/core/duetd /usr/bin/python3 tests/integration/test_limits.py
"""

import asyncio
import base64
import contextlib
import json
import os
import select
import socket
import ssl
import struct
import time
import unittest

from duet_harness import (WAIT, Closed, DuetTestCase, Server, eventually, raw_request, ssl_context, unique_id)
from test_metrics import healthz, scrape, wait_for_metric


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def ws_text_frame(text):
    """One masked (client-to-server) WebSocket text frame."""
    payload = text.encode('utf-8')
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack('!BB', 0x81, 0x80 | n)
    elif n < 65536:
        head = struct.pack('!BBH', 0x81, 0x80 | 126, n)
    else:
        head = struct.pack('!BBQ', 0x81, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def raw_websocket(server, rcvbuf=4096, timeout=5.0):
    """A TLS socket that did the WebSocket handshake by hand and will read only
    when told to. Its receive buffer is small so the server's data piles up
    in the server rather than in this client's kernel."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect((server.host, server.port))
    tls = ssl_context(server.ca_file, alpn=None).wrap_socket(sock, server_hostname='localhost')
    key = base64.b64encode(os.urandom(16)).decode()
    tls.sendall(('GET / HTTP/1.1\r\nHost: localhost:%d\r\nUpgrade: websocket\r\n'
                 'Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n'
                 'Sec-WebSocket-Version: 13\r\n\r\n' % (server.port, key)).encode())
    head = b''
    deadline = time.monotonic() + timeout
    while b'\r\n\r\n' not in head:
        if time.monotonic() > deadline:
            raise AssertionError('no WebSocket handshake answer: %r' % head)
        chunk = tls.recv(1)  # byte by byte: leave any frames in the socket
        if not chunk:
            raise AssertionError('closed during the WebSocket handshake: %r' % head)
        head += chunk
    if not head.startswith(b'HTTP/1.1 101'):
        raise AssertionError('WebSocket handshake refused: %r' % head)
    return tls


def read_until_closed(tls, timeout):
    """Read (and discard) until the peer closes; returns the bytes read, or
    raises if the connection is still open after timeout."""
    deadline = time.monotonic() + timeout
    total = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError('connection still open %.1f s later (%d bytes read)'
                                 % (timeout, total))
        tls.settimeout(left)
        try:
            data = tls.recv(1 << 20)
        except (socket.timeout, TimeoutError):
            continue
        except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return total
        if not data:
            return total
        total += len(data)


def wait_closed_by_server(sock, timeout, drip=None, drip_every=0.5):
    """Wait until the server closes sock (a plain or TLS socket). With drip (bytes),
    send one byte of it every drip_every seconds meanwhile (slowloris).
    Returns (seconds until closed or None if still open at timeout, data read)."""
    start = time.monotonic()
    deadline = start + timeout
    next_drip = start
    sock.setblocking(False)
    got = b''
    i = 0
    while time.monotonic() < deadline:
        now = time.monotonic()
        if drip is not None and now >= next_drip and i < len(drip):
            try:
                sock.send(drip[i:i + 1])
                i += 1
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                pass
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                return time.monotonic() - start, got
            next_drip = now + drip_every
        pending = isinstance(sock, ssl.SSLSocket) and sock.pending()
        if not pending:
            r, _, _ = select.select([sock], [], [], 0.05)
            if not r:
                continue
        try:
            data = sock.recv(65536)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            continue  # e.g. a TLS 1.3 session ticket: not application data
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            return time.monotonic() - start, got
        if not data:
            return time.monotonic() - start, got
        got += data
    return None, got


async def wait_for_connections(srv, n, timeout=WAIT):
    """Poll /healthz until it counts n open WebSockets (closes are asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        got = healthz(srv)['connections']
        if got == n:
            return
        if time.monotonic() > deadline:
            raise AssertionError('/healthz counts %d open WebSockets, expected %d' % (got, n))
        await asyncio.sleep(0.05)


class LimitsCase(DuetTestCase):
    """Each test starts its own duetd with the options it needs."""

    def start_server(self, args, **kwargs):
        srv = Server(extra_args=args, **kwargs)
        srv.__enter__()
        self.addCleanup(srv.__exit__, None, None, None)
        self.server = srv
        return srv

    async def assert_refused_and_closed(self, client, code, close_code):
        """The server sends exactly one error with code, then closes."""
        got, seen = await client.expect_close(code=close_code)
        self.assertEqual(len(seen), 1, 'expected one error before the close, got %r' % seen)
        self.assertError(json.loads(seen[0]), code)

    async def until_answered(self, sender, reader=None, sentinel=None, timeout=WAIT):
        """Every message reader (default: sender) gets before the answer to
        one more message from sender, which it sends once the rate limit's
        bucket has refilled: the server answers and relays a connection's
        messages in order, so those are all that the earlier ones caused,
        however slow the server is. sentinel: a message sender relays to
        reader (default: an unknown type, answered with an error). If the
        server was still reading a backlog and dropped it, it is sent again."""
        reader = reader or sender
        deadline = time.monotonic() + timeout
        got = []
        while True:
            await asyncio.sleep(1.2)  # the bucket refills: the next message passes
            await sender.send_json(sentinel or {'no-such-type': 1})
            try:
                while True:
                    m = await reader.recv_json(timeout=5)
                    if (m == sentinel if sentinel else m.get('error', {}).get('code') == 'unknown-type'):
                        return got
                    got.append(m)
            except Closed:
                raise
            except AssertionError:
                self.assertLess(time.monotonic(), deadline, 'no answer to the sentinel; got %r' % got)

    async def collect(self, client, seconds):
        """Every JSON message that arrives within seconds."""
        out = []
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return out
            try:
                out.append(await client.recv_json(timeout=left))
            except AssertionError as e:
                if isinstance(e, Closed):
                    raise
                return out


# ---------------------------------------------------------------------------
# Connections in all and per address
# ---------------------------------------------------------------------------

class MaxConnectionsTest(LimitsCase):

    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start_server(['--max-connections', '3', '--max-connections-per-ip', '100'])

    async def fill(self):
        clients = []
        for i in range(3):
            c = await self.connect('c%d' % i)
            self.assertEqual(await c.ping_pong(), {'pong': 1})
            clients.append(c)
        return clients

    async def test_the_connection_over_max_connections_gets_server_full_and_close_1013(self):
        clients = await self.fill()
        extra = await self.connect('extra')
        await self.assert_refused_and_closed(extra, 'server-full', 1013)
        # The ones already in are not disturbed.
        for c in clients:
            self.assertEqual(await c.ping_pong(), {'pong': 1})
        for c in clients:
            await c.close()
        await wait_for_connections(self.server, 0)
        await self.assert_server_still_pairs()

    async def test_closing_a_connection_makes_room_for_exactly_one_more(self):
        clients = await self.fill()
        for i in range(2):  # refused ones must not take a slot
            extra = await self.connect('extra%d' % i)
            await self.assert_refused_and_closed(extra, 'server-full', 1013)
        await clients[0].close()
        await wait_for_connections(self.server, 2)
        newcomer = await self.connect('newcomer')
        self.assertEqual(await newcomer.ping_pong(), {'pong': 1})
        again = await self.connect('again')
        await self.assert_refused_and_closed(again, 'server-full', 1013)
        for c in clients[1:] + [newcomer]:
            await c.close()
        await wait_for_connections(self.server, 0)
        await self.assert_server_still_pairs()


class MaxConnectionsPerIpTest(LimitsCase):
    # Test clients come from 127.0.0.1 unless their socket is bound to
    # another loopback address (Linux routes all of 127/8 to lo).
    OTHER = '127.0.0.2'

    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start_server(['--max-connections-per-ip', '2'], address=None)

    async def test_the_connection_over_the_per_address_cap_gets_too_many_connections_and_1008(self):
        first = [await self.connect('ip1-%d' % i, host='127.0.0.1') for i in range(2)]
        for c in first:
            self.assertEqual(await c.ping_pong(), {'pong': 1})
        extra = await self.connect('ip1-extra', host='127.0.0.1')
        await self.assert_refused_and_closed(extra, 'too-many-connections', 1008)
        for c in first:
            self.assertEqual(await c.ping_pong(), {'pong': 1})
            await c.close()
        await wait_for_connections(self.server, 0)
        await self.assert_server_still_pairs()

    async def test_another_address_is_not_counted_against_the_first(self):
        first = [await self.connect('ip1-%d' % i, host='127.0.0.1') for i in range(2)]
        for c in first:
            self.assertEqual(await c.ping_pong(), {'pong': 1})
        others = [await self.connect('ip2-%d' % i, host='127.0.0.1',
                                     local_addr=(self.OTHER, 0)) for i in range(2)]
        for c in others:
            self.assertEqual(await c.ping_pong(), {'pong': 1}, 'a client from %s' % self.OTHER)
        self.assertEqual(healthz(self.server)['connections'], 4)
        # Both addresses are now at their cap.
        extra = await self.connect('ip2-extra', host='127.0.0.1', local_addr=(self.OTHER, 0))
        await self.assert_refused_and_closed(extra, 'too-many-connections', 1008)
        # Room again for 127.0.0.1 once one of its connections is gone.
        await first[0].close()
        await wait_for_connections(self.server, 3)
        again = await self.connect('ip1-again', host='127.0.0.1')
        self.assertEqual(await again.ping_pong(), {'pong': 1})
        for c in first[1:] + others + [again]:
            await c.close()
        await wait_for_connections(self.server, 0)
        await self.assert_server_still_pairs()


# ---------------------------------------------------------------------------
# Message rate
# ---------------------------------------------------------------------------

RATE = 5  # --max-messages-per-second in these tests; bursts of 2 * RATE


class RateLimitTest(LimitsCase):

    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start_server(['--max-messages-per-second', str(RATE)])

    async def test_a_burst_over_the_rate_gets_pongs_for_the_burst_and_one_rate_limited_error(self):
        c = await self.connect('fast')
        bystander = await self.connect('bystander')
        t0 = time.monotonic()
        for _ in range(30):
            await c.send_json({'ping': 1})
        sent_in = time.monotonic() - t0
        got = await self.until_answered(c)
        pongs = [m for m in got if m == {'pong': 1}]
        errors = [m for m in got if m != {'pong': 1}]
        self.assertEqual(len(errors), 1, 'expected exactly one rate-limited error, got %r' % errors)
        self.assertError(errors[0], 'rate-limited')
        # The bucket holds 2 * RATE; a few more may have dripped in while sending.
        self.assertGreaterEqual(len(pongs), RATE, got)
        self.assertLessEqual(len(pongs), 2 * RATE + 1 + int(RATE * sent_in), got)
        # Another connection has its own bucket.
        self.assertEqual(await bystander.ping_pong(), {'pong': 1})
        # The limited connection stays open and works again after a pause
        # (the one until_answered made).
        self.assertEqual(await c.ping_pong(), {'pong': 1})
        await c.expect_nothing(0.3)
        await self.assert_server_still_pairs()

    async def test_messages_over_the_rate_are_not_relayed(self):
        a, b = await self.pair()
        ices = [{'ice': {'candidate': 'candidate:%d' % i}, 'remote': a.name} for i in range(30)]
        for m in ices:
            await b.send_json(m)
        # After a pause the pair relays again: all that was relayed before
        # arrives before this one.
        after = {'ice': {'candidate': 'after'}, 'remote': a.name}
        relayed = await self.until_answered(b, a, after)
        told = await b.replies_before_pong()
        self.assertEqual(len(told), 1, 'the sender should get one error, got %r' % told)
        self.assertError(told[0], 'rate-limited')
        # What got through is the head of what was sent (the bucket's
        # burst), in order, then whatever a token that dripped in while the
        # server read the rest let through; the rest was dropped. (On a busy
        # machine the server reads the 30 over more than the 0.2 s a token
        # takes: then a later one passes, not only the head.)
        self.assertGreaterEqual(len(relayed), RATE, relayed)
        self.assertLessEqual(len(relayed), 2 * RATE + 2, relayed)
        self.assertEqual(relayed[:RATE], ices[:RATE])
        positions = [ices.index(m) for m in relayed]  # fails if one was not sent
        self.assertEqual(positions, sorted(set(positions)), 'relayed in order, each once')
        await b.expect_nothing(0.2)
        await self.assert_server_still_pairs()

    async def test_a_steady_flood_is_told_rate_limited_at_most_once_a_second(self):
        c = await self.connect('flood')
        received = []  # (time, message)

        sentinel_seen = asyncio.Event()

        async def reader():
            with contextlib.suppress(AssertionError):
                while True:
                    m = await c.recv_json()
                    if m.get('error', {}).get('code') == 'unknown-type':
                        sentinel_seen.set()
                        return
                    received.append((time.monotonic(), m))

        task = asyncio.create_task(reader())
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.5:
            await c.send_json({'ping': 1})
            await asyncio.sleep(0.02)
        elapsed = time.monotonic() - t0
        # Once the bucket has refilled, a message of an unknown type is
        # answered after every answer to the flood: the reader stops there.
        await asyncio.sleep(1.2)
        await c.send_json({'no-such-type': 1})
        try:
            await asyncio.wait_for(sentinel_seen.wait(), WAIT)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pongs = [t for t, m in received if m == {'pong': 1}]
        errors = [(t, m) for t, m in received if m != {'pong': 1}]
        for _, m in errors:
            self.assertError(m, 'rate-limited')
        self.assertGreaterEqual(len(errors), 1)
        self.assertLessEqual(len(errors), int(elapsed) + 1, errors)
        for (t1, _), (t2, _) in zip(errors, errors[1:]):
            self.assertGreater(t2 - t1, 0.7, 'two rate-limited errors %.2f s apart' % (t2 - t1))
        # The burst, then about RATE a second: the bucket refills, but no faster.
        self.assertGreater(len(pongs), 2 * RATE, '%d pongs in %.1f s' % (len(pongs), elapsed))
        self.assertLessEqual(len(pongs), 2 * RATE + int(RATE * (elapsed + 0.3)) + 2,
                             '%d pongs in %.1f s' % (len(pongs), elapsed))
        self.assertTrue(c.is_open)
        await self.assert_server_still_pairs()


# ---------------------------------------------------------------------------
# A client that does not read
# ---------------------------------------------------------------------------

QUEUE = 65536
SDP_BYTES = 60000


class MaxQueuedBytesTest(LimitsCase):

    async def asyncSetUp(self):
        await super().asyncSetUp()
        # A high message rate so that only the queue limit can apply.
        self.start_server(['--max-queued-bytes', str(QUEUE),
                           '--max-messages-per-second', '100000'])

    def sdp(self, remote, i):
        return {'sdp': {'type': 'offer', 'sdp': 'v=0 %d ' % i + 's' * SDP_BYTES}, 'remote': remote}

    async def test_a_client_that_never_reads_is_disconnected_and_its_partner_told(self):
        slow_id, fast_id = unique_id('slow'), unique_id('fast')
        slow = await asyncio.to_thread(raw_websocket, self.server)
        self.addCleanup(slow.close)
        before = scrape(self.server).value('duet_messages_received_total')
        slow.sendall(ws_text_frame(json.dumps({'open': {'local': slow_id, 'remote': fast_id}})))
        await eventually(lambda: scrape(self.server).value('duet_messages_received_total') > before,
                         what="the slow client's open")
        fast = await self.connect(fast_id)
        await fast.open(fast_id, slow_id)
        self.assertEqual(await fast.recv_json(), {'start': 'offer'})

        before_close = []
        after_close = []
        closed_seen = asyncio.Event()

        async def reader():
            with contextlib.suppress(AssertionError):
                while True:
                    m = await fast.recv_json(timeout=30)
                    (after_close if closed_seen.is_set() else before_close).append(m)
                    if m == {'close': 1}:
                        closed_seen.set()

        task = asyncio.create_task(reader())
        sent = 0
        deadline = time.monotonic() + 15
        # Kernel buffers on both sides absorb a few MB first; 300 x 60 KB is 18 MB.
        while not closed_seen.is_set() and sent < 300 and time.monotonic() < deadline:
            await fast.send_json(self.sdp(slow_id, sent))
            sent += 1
            await asyncio.sleep(0)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(closed_seen.wait(), 3)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self.assertTrue(closed_seen.is_set(),
                        'the partner was never told {"close":1} after %d x %d-byte messages to a '
                        'client that does not read (--max-queued-bytes %d); messages: %r'
                        % (sent, SDP_BYTES, QUEUE, before_close[:5]))
        self.assertEqual(before_close, [{'close': 1}],
                         'the sender got something other than close before it')
        # The server lets go of the slow client even though it reads nothing,
        # not even the close frame (its socket buffers are full).
        s = await wait_for_metric(self.server, 'duet_connections_open', 1, timeout=15)
        self.assertEqual(s.value('duet_connections_closed_total', reason='limit'), 1, s.text)
        await asyncio.to_thread(read_until_closed, slow, 10)
        # The sender's connection is fine. Messages it sent after the close
        # started are refused, and those answers may still be on their way.
        for m in after_close:
            self.assertError(m, {'not-paired', 'not-your-partner'})
        await fast.send_json({'ping': 1})
        for _ in range(sent + 1):
            m = await fast.recv_json()
            if m == {'pong': 1}:
                break
            self.assertError(m, {'not-paired', 'not-your-partner'})
        else:
            self.fail('no pong after %d refused relays' % sent)
        await self.assert_server_still_pairs()

    async def test_a_client_that_keeps_up_is_not_disconnected_however_much_passes_through(self):
        # The limit is on bytes waiting, not bytes sent: 40 x 60 KB (36 x the
        # limit) pass when each is read before the next is sent.
        a, b = await self.pair()
        for i in range(40):
            m = self.sdp(a.name, i)
            await b.send_json(m)
            self.assertEqual(await a.recv_json(), m, 'message %d' % i)
        await b.expect_nothing(0.2)
        s = scrape(self.server)
        self.assertEqual(s.value('duet_connections_closed_total', reason='limit'), 0, s.text)
        self.assertEqual(s.value('duet_pairing_relayed_sdp_total'), 40, s.text)


# ---------------------------------------------------------------------------
# Ids
# ---------------------------------------------------------------------------

class IdLimitTest(LimitsCase):
    MAX = 16

    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start_server(['--plugin-opt', 'pairing.max-id-bytes=%d' % self.MAX])

    async def assert_open_refused(self, local, remote):
        c = await self.connect('bad-id')
        await c.open(local, remote)
        self.assertError(await c.recv_json(), 'bad-request', 'open %r -> %r' % (local, remote))
        self.assertEqual(await c.ping_pong(), {'pong': 1})
        await c.close()

    async def test_ids_over_max_id_bytes_are_a_bad_request(self):
        long_ascii = 'x' * (self.MAX + 1)
        long_utf8 = '\u00e9' * (self.MAX // 2) + 'x'  # MAX // 2 chars of 2 bytes, +1 byte
        self.assertEqual(len(long_utf8.encode()), self.MAX + 1)
        for bad in [long_ascii, long_utf8, 'y' * 1000]:
            await self.assert_open_refused(bad, 'ok')
            await self.assert_open_refused('ok', bad)
        await self.assert_server_still_pairs()

    async def test_ids_of_exactly_max_id_bytes_pair(self):
        x = ('\u00e9' * 3 + unique_id('')[:10])
        self.assertEqual(len(x.encode()), self.MAX)
        y = unique_id('y')[:self.MAX].ljust(self.MAX, 'z')
        await self.pair(x, y)

    async def test_ids_with_control_characters_are_a_bad_request(self):
        for bad in ['a\u0001b', 'a\nb', '\u007f', 'a\u0000b', 'tab\there', '\u001f', 'cr\r']:
            await self.assert_open_refused(bad, 'ok')
            await self.assert_open_refused('ok', bad)
        await self.assert_server_still_pairs()


# ---------------------------------------------------------------------------
# Open timeout
# ---------------------------------------------------------------------------

class OpenTimeoutTest(LimitsCase):

    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start_server(['--open-timeout', '0.5'])

    async def test_a_websocket_that_sends_nothing_gets_open_timeout_and_close_4408(self):
        t0 = time.monotonic()
        c = await self.connect('idle')
        await self.assert_refused_and_closed(c, 'open-timeout', 4408)
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 0.4, 'closed after only %.2f s' % elapsed)
        self.assertLess(elapsed, 3.0)
        await self.assert_server_still_pairs()

    async def test_a_websocket_that_opens_in_time_is_not_closed(self):
        c = await self.connect('prompt')
        await c.open(unique_id('me'), unique_id('you'))
        await c.expect_nothing(1.5)
        self.assertEqual(await c.ping_pong(), {'pong': 1})
        await self.assert_server_still_pairs()

    async def test_a_refused_message_does_not_stop_the_open_timeout(self):
        c = await self.connect('junk')
        await c.send_text('not json')
        self.assertError(await c.recv_json(), 'malformed')
        await self.assert_refused_and_closed(c, 'open-timeout', 4408)
        await self.assert_server_still_pairs()


# ---------------------------------------------------------------------------
# HTTP: handshake and header timeout, header size
# ---------------------------------------------------------------------------

HTTP_TIMEOUT = 2
SLACK = 3  # seconds on top of --http-timeout before we call it a failure


class HttpTimeoutTest(LimitsCase):

    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start_server(['--http-timeout', str(HTTP_TIMEOUT)])

    async def assert_closed_in_time_while_others_are_served(self, make_socket, drip=None):
        sock = await asyncio.to_thread(make_socket)
        self.addCleanup(sock.close)
        waiting = asyncio.create_task(asyncio.to_thread(
            wait_closed_by_server, sock, HTTP_TIMEOUT + SLACK + 2, drip))
        # Meanwhile normal clients are served.
        await asyncio.sleep(0.3)
        self.assertEqual(healthz(self.server)['status'], 'ok')
        await self.assert_server_still_pairs()
        elapsed, got = await waiting
        self.assertIsNotNone(elapsed, 'the server did not close the connection within %d s '
                             '(--http-timeout %d); it sent %r' % (HTTP_TIMEOUT + SLACK + 2,
                                                                  HTTP_TIMEOUT, got[:200]))
        self.assertLessEqual(elapsed, HTTP_TIMEOUT + SLACK,
                             'closed only after %.1f s (--http-timeout %d)' % (elapsed, HTTP_TIMEOUT))
        self.assertFalse(got.startswith(b'HTTP/1.1 2'), got[:200])
        await self.assert_server_still_pairs()

    async def test_a_tcp_connection_that_never_starts_tls_is_closed(self):
        def make():
            return socket.create_connection((self.server.host, self.server.port), timeout=5)
        await self.assert_closed_in_time_while_others_are_served(make)

    async def test_a_tls_connection_that_never_sends_a_request_is_closed(self):
        def make():
            raw = socket.create_connection((self.server.host, self.server.port), timeout=5)
            return ssl_context(self.server.ca_file).wrap_socket(raw, server_hostname='localhost')
        await self.assert_closed_in_time_while_others_are_served(make)

    async def test_a_slowloris_client_sending_a_header_byte_every_half_second_is_closed(self):
        def make():
            raw = socket.create_connection((self.server.host, self.server.port), timeout=5)
            tls = ssl_context(self.server.ca_file).wrap_socket(raw, server_hostname='localhost')
            tls.sendall(b'GET / HTTP/1.1\r\nHost: localhost\r\n')
            return tls
        await self.assert_closed_in_time_while_others_are_served(
            make, drip=b'X-Slow-Header: ' + b'a' * 100)


def refused(server, request):
    """Send request; returns None if refused (4xx or closed without an answer),
    else a description of the answer."""
    try:
        r = raw_request(server, request, timeout=5)
    except (ConnectionError, ssl.SSLError, AssertionError) as e:
        return None if 'bad status line' not in str(e) else str(e)
    except (socket.timeout, TimeoutError):
        return 'no answer and no close within 5 s'
    if 400 <= r.status < 500:
        return None
    return 'status %d: %r' % (r.status, r.raw_head[:200])


def request_with_header(server, path, header_bytes):
    return ('GET %s HTTP/1.1\r\nHost: localhost:%d\r\nX-Big: %s\r\nConnection: close\r\n\r\n'
            % (path, server.port, 'h' * header_bytes)).encode()


class MaxHeaderBytesTest(LimitsCase):

    async def test_a_request_with_headers_over_max_header_bytes_is_refused(self):
        srv = self.start_server(['--max-header-bytes', '2048'])
        for size in [4000, 20000]:
            what = refused(srv, request_with_header(srv, '/healthz', size))
            self.assertIsNone(what, 'a %d-byte header with --max-header-bytes 2048 got %s'
                              % (size, what))
        # Under the cap is fine.
        r = raw_request(srv, request_with_header(srv, '/healthz', 1000))
        self.assertEqual(r.status, 200, r.raw_head)
        await self.assert_server_still_pairs()

    async def test_a_20_kb_header_is_refused_by_default(self):
        srv = self.start_server([])
        what = refused(srv, request_with_header(srv, '/healthz', 20000))
        self.assertIsNone(what, 'a 20000-byte header got %s' % what)
        r = raw_request(srv, request_with_header(srv, '/healthz', 4000))
        self.assertEqual(r.status, 200, r.raw_head)
        await self.assert_server_still_pairs()


if __name__ == '__main__':
    unittest.main()
