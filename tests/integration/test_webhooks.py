"""The webhooks plugin (issue 25) against a real duetd over real TLS: every
call's call.started and call.ended reach the tests' own receiver
(tests/webhook-receiver: the Standard Webhooks reference library,
standardwebhooks, verifies each request), with the right data and nothing
of the call's SDP, ICE or addresses; how a call ended (hang-up,
connection-lost, replaced, timeout by keepalive, server-shutdown on SIGTERM,
node-lost when the other side's cluster node is killed); rings: call.missed
(no-answer, cancelled), call.declined, and an answered ring that is neither;
a receiver that is down, drops connections, never answers or redirects
(never followed), then comes back: every event arrives, none lost; kill -9
or SIGTERM with events in the outbox: the next duetd on the same --state-dir
sends the same ids; --workers: an outbox per worker, which a single process
takes over later; a full outbox drops events, says so in the log and calls
go on; bad options exit 2; the metrics; and a printed delivery figure (no
timing assertion). The --workers and cluster tests run a redis-server of
their own (skipped without one).

Every wait is for an event, a metric or a log line, with generous timeouts:
a busy machine makes the test slower, never wrong.

Run: DUETD=build/core/duetd /usr/bin/python3 tests/integration/test_webhooks.py
"""

import asyncio
import base64
import datetime
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
import unittest
import uuid

from duet_harness import (WAIT, DuetTestCase, Server, eventually, run_duetd, stop_checked, unique_id)
from redis_harness import RedisServer, cluster_args, require_cluster_support, require_redis, start_node
from test_cluster import NODE_DEATH_LIMIT
from test_keepalive import CLOSE_DEADLINE as KEEPALIVE_CLOSE_DEADLINE
from test_keepalive import FAST_ARGS as KEEPALIVE_FAST_ARGS
from test_keepalive import recv_besides_pings, stop_answering_ping_frames
from test_metrics import scrape
from test_resume import drop
from test_ring import T, RingClient
from test_workers import listening_workers
from webhook_harness import (REDIRECT_PATH, WebhookReceiver, delivered, pending_in_outbox, read_outbox,
                             require_webhook_receiver, write_secret)

NODE_ID = 'webhook-test-node'
# The longest wait between retries: short, so a receiver that comes back is
# tried again within a second.
FAST_RETRY = ['--plugin-opt', 'webhooks.max-backoff=1s']
RESUME_GRACE = 2  # seconds a resumable client keeps its place (pairing.resume-grace)
# Generous: a retry after a failure waits up to max-backoff, and the machine
# may be running whole test suites beside this one.
DELIVERY_WAIT = 60.0
EVENT_ID = re.compile(r'^evt_[0-9a-fA-F]{32}$')
TIME_RE = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')
STARTED_KEYS = {'offerer', 'answerer', 'node'}
ENDED_KEYS = {'ended_by', 'other', 'how', 'duration_ms', 'node'}
COUNTERS = ('webhooks_queued_total', 'webhooks_sent_total', 'webhooks_failed_total', 'webhooks_retried_total',
            'webhooks_expired_total', 'webhooks_dropped_total', 'webhooks_delay_milliseconds_total')
GAUGES = ('webhooks_outbox_bytes', 'webhooks_pending')


def setUpModule():
    require_webhook_receiver()
    listing = run_duetd(['--list-plugins'])
    if not re.search(r'^webhooks ', listing.stdout, re.M):
        raise AssertionError('this duetd has no webhooks plugin (duetd --list-plugins):\n%s%s\n'
                             'it is built with libcurl: ninja -C build' % (listing.stdout, listing.stderr))


# ---------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------

def started(offerer, answerer):
    """Matches the body of call.started for this offerer and answerer."""
    return lambda b: (b.get('type') == 'call.started' and isinstance(b.get('data'), dict)
                      and b['data'].get('offerer') == offerer and b['data'].get('answerer') == answerer)


def ended(ended_by, other):
    """Matches the body of call.ended whose ended_by and other are these."""
    return lambda b: (b.get('type') == 'call.ended' and isinstance(b.get('data'), dict)
                      and b['data'].get('ended_by') == ended_by and b['data'].get('other') == other)


def about(*ids):
    """Matches the body of any event that names one of ids in its data."""
    return lambda b: isinstance(b.get('data'), dict) and any(v in ids for v in b['data'].values())


def of_type(kind):
    return lambda b: b.get('type') == kind


def body_time_ms(body):
    """The event's body timestamp, in ms since the epoch."""
    when = datetime.datetime.strptime(body['timestamp'], '%Y-%m-%dT%H:%M:%S.%fZ')
    return when.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000


def sending_line(url, waiting):
    """The start-up INFO line of a duetd with a webhook URL, as a regex (the
    outbox's path may follow its name)."""
    return r'info: webhooks: sending to %s \(%d events? waiting in the outbox(?: [^)]*)?\)' % (re.escape(url), waiting)


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100.0 * len(ordered))) - 1))]


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------

def metric(srv, name):
    """duet_NAME on /metrics; fails if the line is missing."""
    s = scrape(srv)
    key = ('duet_' + name, ())
    if key not in s.samples:
        raise AssertionError('duet_%s is missing from /metrics:\n%s' % (name, s.text))
    return s.samples[key]


async def metric_reaches(srv, name, check, what):
    """Waits until check(duet_NAME) is true; returns the value."""
    got = []

    def probe():
        got[:] = [metric(srv, name)]
        return check(got[0])
    try:
        await eventually(probe, timeout=DELIVERY_WAIT, what=what)
    except AssertionError as e:
        raise AssertionError('%s (duet_%s is %s)\nduetd log:\n%s' % (e, name, got, srv.log()[-5000:])) from None
    return got[0]


# ---------------------------------------------------------------------------
# The test cases' common parts
# ---------------------------------------------------------------------------

class WebhookCase(DuetTestCase):
    """Calls as the tests make them, and the checks of one event."""

    async def call(self, hang_up=True, sdp_text='v=0\r\n', candidate='candidate:1 1 UDP 1 192.0.2.1 9 typ host'):
        """Pairs two tutorial clients (a waits, b opens second and offers),
        relays an sdp and an ice each way and, with hang_up, lets the call
        last a little and closes a with 1000 (b is told and closes too).
        Returns (a, b)."""
        a, b = await self.pair()
        offer = {'sdp': {'type': 'offer', 'sdp': sdp_text}, 'remote': a.name}
        answer = {'sdp': {'type': 'answer', 'sdp': sdp_text}, 'remote': b.name}
        await b.send_json(offer)
        self.assertEqual(await a.recv_json(), offer)
        await a.send_json(answer)
        self.assertEqual(await b.recv_json(), answer)
        for sender, receiver in ((b, a), (a, b)):
            ice = {'ice': {'candidate': candidate, 'sdpMid': '0', 'sdpMLineIndex': 0}, 'remote': receiver.name}
            await sender.send_json(ice)
            self.assertEqual(await receiver.recv_json(), ice)
        if hang_up:
            # duration_ms is in milliseconds: a call of a few ms must not round to 0.
            await asyncio.sleep(0.05)
            await a.close()
            self.assertEqual(await b.recv_json(), {'close': 1})
            await b.close()
        return a, b

    async def quick_call(self):
        """A call with nothing relayed, as fast as the protocol allows: a
        waits, b opens, a hangs up (1000), b is told and closes."""
        a_id, b_id = unique_id('a'), unique_id('b')
        a = await self.connect(a_id)
        await a.open(a_id, b_id)
        await a.synced()  # a waits before b's open is read
        b = await self.connect(b_id)
        await b.open(b_id, a_id)
        self.assertEqual(await a.recv_json(), {'start': 'answer'})
        self.assertEqual(await b.recv_json(), {'start': 'offer'})
        await a.close()
        self.assertEqual(await b.recv_json(), {'close': 1})
        await b.close()
        return a_id, b_id

    async def wait_events(self, hooks, match, n=1, what=None, timeout=DELIVERY_WAIT):
        """The first delivery of each of at least n events match accepts (the
        receiver's wait blocks, so it runs in a thread)."""
        return await asyncio.to_thread(hooks.wait_events, match, n, timeout, what)

    async def wait_event(self, hooks, match, what):
        """The one event match accepts, delivered."""
        got = await self.wait_events(hooks, match, 1, what)
        self.assertEqual(len(got), 1, '%s: more than one event (distinct ids): %r' % (what, got))
        return got[0]

    def assertRequestsVerified(self, hooks, event_id):
        """Every request that carried event_id (retries included) verified."""
        for r in hooks.requests():
            if r['id'] == event_id:
                self.assertTrue(r['verified'], 'a request of %s did not verify: %r' % (event_id, r))

    def assertEvent(self, request, kind, data, hooks):
        """request (a delivery) is the event kind with exactly data (a
        duration_ms of None: any whole number above 0; a rang_ms of None:
        any whole number from 0), well formed and signed right; returns its
        data."""
        self.assertRegex(request['id'] or '', EVENT_ID, 'webhook-id of %r' % request)
        self.assertTrue((request['content_type'] or '').startswith('application/json'),
                        'content-type of %r' % request)
        self.assertEqual(request['path'], '/hook', 'duetd posts to the URL given')
        self.assertRegex(request['timestamp'] or '', r'^\d+$', 'webhook-timestamp of %r' % request)
        self.assertLess(abs(int(request['timestamp']) - request['received_ms'] / 1000), 60,
                        'webhook-timestamp is the attempt\'s time: %r' % request)
        self.assertRequestsVerified(hooks, request['id'])
        body = request['body']
        self.assertEqual(set(body), {'type', 'timestamp', 'data'}, 'body of %r' % request)
        self.assertEqual(body['type'], kind)
        self.assertRegex(body['timestamp'], TIME_RE, 'timestamp of %r' % body)
        self.assertLess(abs(body_time_ms(body) - request['received_ms']), 60000, 'timestamp is now: %r' % body)
        got = body['data']
        self.assertEqual(set(got), set(data), 'data members of %r' % body)
        for key, want in data.items():
            if key == 'duration_ms' and want is None:
                self.assertIsInstance(got[key], int, 'duration_ms of %r' % body)
                self.assertGreater(got[key], 0, 'duration_ms of %r' % body)
                self.assertLess(got[key], 60000, 'duration_ms of %r' % body)
            elif key == 'rang_ms' and want is None:
                self.assertIsInstance(got[key], int, 'rang_ms of %r' % body)
                self.assertGreaterEqual(got[key], 0, 'rang_ms of %r' % body)
                self.assertLess(got[key], 60000, 'rang_ms of %r' % body)
            else:
                self.assertEqual(got[key], want, '%s of %r' % (key, body))
        return got

    def assertNothingOfTheCall(self, request, *secrets_of_the_call):
        """The body holds none of the call's SDP, ICE or addresses."""
        text = json.dumps(request['body'])
        for secret in ('127.0.0.1', 'candidate', 'v=0') + secrets_of_the_call:
            self.assertNotIn(secret, text, 'the webhook body %s holds %r' % (text, secret))


class PerTestServerCase(WebhookCase):
    """A receiver and a duetd of each test's own (the tests change the
    receiver's mode, count metrics from 0 or restart duetd)."""

    async def asyncSetUp(self):
        await super().asyncSetUp()
        self._server = None
        self.tmp = tempfile.mkdtemp(prefix='duet-webhooks-test-')
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def current_server(self):
        return self._server

    def start_receiver(self, mode='ok'):
        hooks = WebhookReceiver(mode=mode)
        hooks.__enter__()
        self.addCleanup(hooks.close)
        return hooks

    def start_server(self, hooks, extra=(), state_dir=None, checked=True):
        """A duetd that sends its webhooks to hooks; checked: it must exit 0
        on SIGTERM at the end (not for one the test kills)."""
        srv = Server(state_dir=state_dir,
                     extra_args=hooks.duetd_args() + ['--node-id', NODE_ID] + FAST_RETRY + list(extra))
        srv.__enter__()
        self._server = srv
        self.addCleanup(stop_checked if checked else Server.cleanup, srv)
        return srv


# ---------------------------------------------------------------------------
# The events of a call, and how it ended
# ---------------------------------------------------------------------------

class CallEventsTest(WebhookCase):
    """One receiver (always ok) and one duetd for the class; every test
    uses ids of its own."""

    @classmethod
    def setUpClass(cls):
        cls.hooks = WebhookReceiver()
        cls.hooks.__enter__()
        try:
            cls.server = Server(extra_args=cls.hooks.duetd_args() + ['--node-id', NODE_ID] + FAST_RETRY
                                + ['--plugin-opt', 'pairing.resume-grace=%d' % RESUME_GRACE])
            cls.server.__enter__()
        except BaseException:
            cls.hooks.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            stop_checked(cls.server)
        finally:
            cls.hooks.close()

    async def test_a_hang_up_sends_call_started_and_call_ended_signed_with_the_right_data_and_nothing_of_the_call(self):
        marker = 'marker-' + uuid.uuid4().hex
        a, b = await self.call(sdp_text='v=0\r\na=fingerprint:sha-256 %s\r\n' % marker,
                               candidate='candidate:%s 1 udp 2122260223 192.0.2.77 54321 typ host' % marker)
        start = await self.wait_event(self.hooks, started(b.name, a.name), 'call.started')
        end = await self.wait_event(self.hooks, ended(a.name, b.name), 'call.ended')
        # b opened second: the server told b to offer.
        self.assertEvent(start, 'call.started', {'offerer': b.name, 'answerer': a.name, 'node': NODE_ID},
                         self.hooks)
        data = self.assertEvent(end, 'call.ended', {'ended_by': a.name, 'other': b.name, 'how': 'hang-up',
                                                    'duration_ms': None, 'node': NODE_ID}, self.hooks)
        self.assertGreaterEqual(data['duration_ms'], 50, 'the call lasted at least the test\'s 50 ms')
        self.assertNotEqual(start['id'], end['id'])
        self.assertLessEqual(start['body']['timestamp'], end['body']['timestamp'])
        for request in (start, end):
            self.assertNothingOfTheCall(request, marker, '192.0.2.77', '54321', 'fingerprint')
        # b's own close afterwards ends nothing: it was no longer in a call.
        await asyncio.to_thread(self.hooks.expect_no_delivery,
                                lambda body: about(a.name, b.name)(body) and body.get('type') == 'call.ended'
                                and not ended(a.name, b.name)(body), 1.0)
        self.assertEqual(len(self.hooks.wait_events(about(a.name, b.name), 2)), 2,
                         'exactly two events (distinct ids) for one call')

    async def test_a_close_with_1001_going_away_is_a_hang_up(self):
        a, b = await self.call(hang_up=False)
        await asyncio.sleep(0.05)
        await asyncio.wait_for(a.ws.close(code=1001), WAIT)
        self.assertEqual(await b.recv_json(), {'close': 1})
        end = await self.wait_event(self.hooks, ended(a.name, b.name), 'call.ended')
        self.assertEvent(end, 'call.ended', {'ended_by': a.name, 'other': b.name, 'how': 'hang-up',
                                             'duration_ms': None, 'node': NODE_ID}, self.hooks)

    async def test_an_abrupt_tcp_close_of_a_tutorial_client_is_connection_lost(self):
        a, b = await self.call(hang_up=False)
        await asyncio.sleep(0.05)
        drop(a)  # no close frame: the link died
        # A tutorial client (no "resume" in its open) holds no place: the
        # call ends now (test_resume checks that it is at once).
        self.assertEqual(await b.recv_json(), {'close': 1})
        end = await self.wait_event(self.hooks, ended(a.name, b.name), 'call.ended')
        self.assertEvent(end, 'call.ended', {'ended_by': a.name, 'other': b.name, 'how': 'connection-lost',
                                             'duration_ms': None, 'node': NODE_ID}, self.hooks)

    async def test_a_close_with_another_code_is_connection_lost(self):
        a, b = await self.call(hang_up=False)
        await asyncio.sleep(0.05)
        await asyncio.wait_for(a.ws.close(code=4000), WAIT)
        self.assertEqual(await b.recv_json(), {'close': 1})
        end = await self.wait_event(self.hooks, ended(a.name, b.name), 'call.ended')
        self.assertEqual(end['body']['data']['how'], 'connection-lost', end)

    async def resumable_pair(self):
        """alice waits and asked to resume; bob is a tutorial client. Returns
        (alice, bob, token)."""
        alice_id, bob_id = unique_id('alice'), unique_id('bob')
        alice = await self.connect(alice_id)
        await alice.send_json({'open': {'local': alice_id, 'remote': bob_id, 'resume': ''}})
        await alice.synced()
        bob = await self.connect(bob_id)
        await bob.open(bob_id, alice_id)
        start = await alice.recv_json()
        self.assertEqual(start.get('start'), 'answer', start)
        self.assertEqual(await bob.recv_json(), {'start': 'offer'})
        return alice, bob, start['resume']

    async def test_a_resume_that_never_comes_is_connection_lost_when_the_place_is_given_up(self):
        alice, bob, token = await self.resumable_pair()
        await self.wait_event(self.hooks, started(bob.name, alice.name), 'call.started')
        drop(alice)
        self.assertEqual(await bob.recv_json(timeout=RESUME_GRACE + WAIT), {'close': 1})
        end = await self.wait_event(self.hooks, ended(alice.name, bob.name), 'call.ended')
        self.assertEvent(end, 'call.ended', {'ended_by': alice.name, 'other': bob.name, 'how': 'connection-lost',
                                             'duration_ms': None, 'node': NODE_ID}, self.hooks)

    async def test_a_resume_in_time_keeps_the_call_no_event_is_sent(self):
        alice, bob, token = await self.resumable_pair()
        await self.wait_event(self.hooks, started(bob.name, alice.name), 'call.started')
        drop(alice)
        back = await self.connect(alice.name)
        await back.send_json({'open': {'local': alice.name, 'remote': bob.name, 'resume': token}})
        self.assertEqual((await back.recv_json())['resumed'], 'answer')
        self.assertEqual(await bob.recv_json(), {'resumed': 'offer'})
        # The same call goes on: neither an end nor a second start.
        await asyncio.to_thread(self.hooks.expect_no_delivery,
                                lambda body: about(alice.name, bob.name)(body)
                                and not started(bob.name, alice.name)(body), RESUME_GRACE + 1.0)
        await back.close()
        self.assertEqual(await bob.recv_json(), {'close': 1})
        end = await self.wait_event(self.hooks, ended(alice.name, bob.name), 'call.ended')
        self.assertEqual(end['body']['data']['how'], 'hang-up', end)
        self.assertEqual(len(self.hooks.wait_events(about(alice.name, bob.name), 2)), 2,
                         'one call: one call.started and one call.ended')

    async def test_the_same_id_opened_again_ends_the_call_as_replaced_and_starts_a_new_one(self):
        a, b = await self.call(hang_up=False)
        await asyncio.sleep(0.05)
        a2 = await self.connect('a-again')
        await a2.open(a.name, b.name)
        self.assertError(await a.recv_json(), 'replaced')
        await a.expect_close(4001)
        self.assertEqual(await b.recv_json(), {'close': 1})
        self.assertEqual(await b.recv_json(), {'start': 'answer'})
        self.assertEqual(await a2.recv_json(), {'start': 'offer'})
        end = await self.wait_event(self.hooks, ended(a.name, b.name), 'call.ended')
        self.assertEvent(end, 'call.ended', {'ended_by': a.name, 'other': b.name, 'how': 'replaced',
                                             'duration_ms': None, 'node': NODE_ID}, self.hooks)
        # The second call: a (the newcomer this time) offers.
        second = await self.wait_event(self.hooks, started(a.name, b.name), 'the second call.started')
        self.assertEvent(second, 'call.started', {'offerer': a.name, 'answerer': b.name, 'node': NODE_ID},
                         self.hooks)
        first = await self.wait_event(self.hooks, started(b.name, a.name), 'the first call.started')
        self.assertLessEqual(first['body']['timestamp'], end['body']['timestamp'])
        self.assertLessEqual(end['body']['timestamp'], second['body']['timestamp'])


# ---------------------------------------------------------------------------
# Rings: missed, declined, answered
# ---------------------------------------------------------------------------

def ring_event(kind, ring):
    """Matches the body of the event kind (call.missed, call.declined) of
    this ring."""
    return lambda b: (b.get('type') == kind and isinstance(b.get('data'), dict)
                      and b['data'].get('ring') == ring)


def ring_outcome(*rings):
    """Matches the body of a call.missed or call.declined of one of rings."""
    return lambda b: (b.get('type') in ('call.missed', 'call.declined') and isinstance(b.get('data'), dict)
                      and b['data'].get('ring') in rings)


class RingCase(RingClient, WebhookCase):
    """One receiver (always ok) and one duetd with lines and rings for the
    class (ring_args: its ring options); every test names its lines and
    callers uniquely."""

    ring_args = []

    @classmethod
    def setUpClass(cls):
        cls.hooks = WebhookReceiver()
        cls.hooks.__enter__()
        try:
            cls.server = Server(extra_args=cls.hooks.duetd_args() + ['--node-id', NODE_ID] + FAST_RETRY
                                + ['--ring-rate', '1000', '--ring-line-rate', '1000', '--ring-create-rate', '1000']
                                + list(cls.ring_args))
            cls.server.__enter__()
        except BaseException:
            cls.hooks.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            stop_checked(cls.server)
        finally:
            cls.hooks.close()

    async def line_of_two(self):
        """A line of two devices named uniquely. Returns (devices, line id,
        line name)."""
        line_name = unique_id('line')
        d1, d2, line = await self.two_devices(line_name)
        return (d1, d2), line, line_name

    async def rung(self, devices, line):
        """A caller of a unique name rings line; every device shows the ring.
        Returns (caller, ring id, caller name)."""
        caller_name = unique_id('caller')
        caller, ringing = await self.ring(line, caller_name)
        await self.incoming(devices, ringing['ring'], caller_name)
        return caller, ringing['ring'], caller_name

    def assertRingEvent(self, request, kind, ring, line_name, caller_name, reason=None):
        """request is the event kind of this ring, with the line's name, the
        caller's name, (call.missed) the reason, a rang_ms from 0 and this
        node, signed right; returns its data."""
        data = {'ring': ring, 'line': line_name, 'caller': caller_name, 'rang_ms': None, 'node': NODE_ID}
        if reason is not None:
            data['reason'] = reason
        got = self.assertEvent(request, kind, data, self.hooks)
        self.assertNothingOfTheCall(request)
        return got


class RingEventsTest(RingCase):
    """Rings ring for the default time: each test ends its rings itself."""

    async def test_a_ring_the_caller_cancels_or_leaves_is_call_missed_cancelled(self):
        devices, line, line_name = await self.line_of_two()
        caller, ring, caller_name = await self.rung(devices, line)
        await caller.send_json({'ring-cancel': {'ring': ring}})
        self.assertEqual(await self.recv(caller, 'ring-ended'), {'ring': ring, 'reason': 'cancelled'})
        for d in devices:
            self.assertEqual(await self.recv(d, 'ring-stop'), {'ring': ring, 'reason': 'cancelled'})
        missed = await self.wait_event(self.hooks, ring_event('call.missed', ring), 'call.missed')
        self.assertRingEvent(missed, 'call.missed', ring, line_name, caller_name, 'cancelled')
        # A caller that goes away has given up too.
        leaver, ring2, leaver_name = await self.rung(devices, line)
        await leaver.close()
        for d in devices:
            self.assertEqual(await self.recv(d, 'ring-stop'), {'ring': ring2, 'reason': 'cancelled'})
        left = await self.wait_event(self.hooks, ring_event('call.missed', ring2), 'call.missed of the caller gone')
        self.assertRingEvent(left, 'call.missed', ring2, line_name, leaver_name, 'cancelled')
        self.assertNotEqual(missed['id'], left['id'])
        # One event per ring, and no call: nothing else names them.
        await asyncio.to_thread(self.hooks.expect_no_delivery,
                                lambda b: about(ring, ring2)(b) and b['type'] != 'call.missed', 0.5)
        self.assertEqual(len(self.hooks.wait_events(about(ring, ring2), 2)), 2)

    async def test_a_declined_ring_is_call_declined(self):
        devices, line, line_name = await self.line_of_two()
        caller, ring, caller_name = await self.rung(devices, line)
        await devices[1].send_json({'ring-decline': {'ring': ring}})
        self.assertEqual(await self.recv(caller, 'ring-ended'), {'ring': ring, 'reason': 'declined'})
        declined = await self.wait_event(self.hooks, ring_event('call.declined', ring), 'call.declined')
        self.assertRingEvent(declined, 'call.declined', ring, line_name, caller_name)
        await asyncio.to_thread(self.hooks.expect_no_delivery,
                                lambda b: about(ring)(b) and b['type'] != 'call.declined', 0.5)

    async def test_an_answered_ring_is_neither_missed_nor_declined_and_its_call_starts_once_connected(self):
        devices, line, line_name = await self.line_of_two()
        caller, ring, caller_name = await self.rung(devices, line)
        await devices[0].send_json({'ring-accept': {'ring': ring}})
        self.assertEqual(await self.recv(devices[1], 'ring-stop'), {'ring': ring, 'reason': 'answered-elsewhere'})
        mine = await self.recv(caller, 'ring-connect')
        theirs = await self.recv(devices[0], 'ring-connect')
        # Accepted is not a call yet: nothing until both sides open.
        await asyncio.to_thread(self.hooks.expect_no_delivery,
                                lambda b: about(ring, mine['local'], mine['remote'])(b), 0.5)
        await caller.open(mine['local'], mine['remote'])
        await caller.synced()
        call = await self.connect('call on the device')
        await call.open(theirs['local'], theirs['remote'])
        self.assertEqual(await caller.recv_json(T), {'start': 'answer'})
        self.assertEqual(await call.recv_json(T), {'start': 'offer'})
        start = await self.wait_event(self.hooks, started(theirs['local'], mine['local']), 'call.started')
        self.assertEvent(start, 'call.started', {'offerer': theirs['local'], 'answerer': mine['local'],
                                                 'node': NODE_ID}, self.hooks)
        await asyncio.sleep(0.05)
        await call.close()
        self.assertEqual(await caller.recv_json(T), {'close': 1})
        end = await self.wait_event(self.hooks, ended(theirs['local'], mine['local']), 'call.ended')
        self.assertEvent(end, 'call.ended', {'ended_by': theirs['local'], 'other': mine['local'], 'how': 'hang-up',
                                             'duration_ms': None, 'node': NODE_ID}, self.hooks)
        # The ring itself was answered: no call.missed, no call.declined.
        await asyncio.to_thread(self.hooks.expect_no_delivery, ring_outcome(ring), 1.0)


class RingNoAnswerTest(RingCase):
    """Rings ring for 1.5 s."""

    ring_args = ['--ring-time', '1.5']

    async def test_a_ring_nobody_answers_is_call_missed_no_answer(self):
        devices, line, line_name = await self.line_of_two()
        caller, ring, caller_name = await self.rung(devices, line)
        self.assertEqual(await self.recv(caller, 'ring-ended'), {'ring': ring, 'reason': 'no-answer'})
        missed = await self.wait_event(self.hooks, ring_event('call.missed', ring), 'call.missed')
        data = self.assertRingEvent(missed, 'call.missed', ring, line_name, caller_name, 'no-answer')
        self.assertGreaterEqual(data['rang_ms'], 1000, 'it rang for the ring time (1.5 s): %r' % data)
        await asyncio.to_thread(self.hooks.expect_no_delivery,
                                lambda b: about(ring)(b) and b['type'] != 'call.missed', 0.5)


# ---------------------------------------------------------------------------
# A receiver that is down, then back
# ---------------------------------------------------------------------------

class ReceiverDownTest(PerTestServerCase):

    async def test_a_receiver_down_for_a_while_then_up_gets_every_event_none_lost(self):
        hooks = self.start_receiver('fail')
        srv = self.start_server(hooks)
        calls = [await self.call() for _ in range(3)]
        await metric_reaches(srv, 'webhooks_queued_total', lambda v: v == 6, 'six events queued')
        # Down for a while: attempts fail (503), and after the first failures
        # duetd backs off (at most 1 s apart here) and tries only the oldest.
        await metric_reaches(srv, 'webhooks_failed_total', lambda v: v >= 3, 'three failed attempts')
        before = len(hooks.requests())
        await asyncio.sleep(3.0)
        window = hooks.requests()[before:]
        self.assertLessEqual(len(window), 5, 'backing off, 1 s apart at most: %r' % window)
        self.assertLessEqual(len({r['id'] for r in window}), 1,
                             'while failing only the oldest event is tried: %r' % window)
        self.assertEqual(metric(srv, 'webhooks_sent_total'), 0)
        self.assertEqual(metric(srv, 'webhooks_pending'), 6)
        failed_while_down = [r for r in hooks.requests() if r['status'] == 503]
        self.assertTrue(failed_while_down)
        for r in hooks.requests():
            self.assertTrue(r['verified'], 'every attempt is signed right: %r' % r)
        # Up again.
        hooks.set_mode('ok')
        for a, b in calls:
            await self.wait_events(hooks, started(b.name, a.name), 1, 'call.started of %s' % a.name)
            await self.wait_events(hooks, ended(a.name, b.name), 1, 'call.ended of %s' % a.name)
        await metric_reaches(srv, 'webhooks_sent_total', lambda v: v == 6, 'six events sent')
        await metric_reaches(srv, 'webhooks_pending', lambda v: v == 0, 'nothing pending')
        ids = {r['id'] for r in hooks.deliveries()}
        self.assertEqual(len(ids), 6, 'six events, six ids: %r' % hooks.deliveries())
        self.assertLessEqual({r['id'] for r in hooks.requests()}, ids,
                             'every id attempted was in the end delivered')
        for r in hooks.requests():
            self.assertTrue(r['verified'], r)
        self.assertGreaterEqual(metric(srv, 'webhooks_failed_total'), len(failed_while_down))
        self.assertGreater(metric(srv, 'webhooks_retried_total'), 0)
        self.assertEqual(metric(srv, 'webhooks_dropped_total'), 0)
        self.assertEqual(metric(srv, 'webhooks_expired_total'), 0)

    async def test_a_receiver_that_drops_the_connection_or_never_answers_is_tried_again(self):
        for mode in ('drop', 'hang'):
            with self.subTest(mode=mode):
                hooks = self.start_receiver(mode)
                srv = self.start_server(hooks, extra=['--plugin-opt', 'webhooks.timeout=2s'])
                a, b = await self.call()
                await metric_reaches(srv, 'webhooks_failed_total', lambda v: v >= 2,
                                     'two failed attempts (%s)' % mode)
                self.assertEqual(metric(srv, 'webhooks_sent_total'), 0)
                hooks.set_mode('ok')
                await self.wait_events(hooks, about(a.name, b.name), 2, 'both events after %s' % mode)
                await metric_reaches(srv, 'webhooks_pending', lambda v: v == 0, 'nothing pending')
                self.assertGreater(metric(srv, 'webhooks_retried_total'), 0)
                stop_checked(srv)


# ---------------------------------------------------------------------------
# kill -9 with events in the outbox
# ---------------------------------------------------------------------------

class KillTest(PerTestServerCase):

    async def test_events_in_the_outbox_survive_kill_9_and_the_next_duetd_sends_the_same_ids(self):
        state = os.path.join(self.tmp, 'state')
        # hang: duetd's first attempts reach the receiver (so the test knows
        # every id) and are never answered: all four are in flight at the kill.
        hooks = self.start_receiver('hang')
        srv = self.start_server(hooks, state_dir=state, checked=False)
        calls = [await self.call() for _ in range(2)]
        await metric_reaches(srv, 'webhooks_queued_total', lambda v: v == 4, 'four events queued')
        seen = await asyncio.to_thread(
            hooks.wait_requests, lambda rs: len({r['id'] for r in rs}) >= 4 and rs, 'four ids attempted',
            DELIVERY_WAIT)
        hooks.set_mode('fail')  # any attempt before the kill fails too
        before = {r['id']: r['body'] for r in seen}
        self.assertEqual(len(before), 4, seen)
        self.assertEqual(metric(srv, 'webhooks_sent_total'), 0)
        outbox = os.path.join(state, 'webhooks', 'outbox.jsonl')
        self.assertTrue(os.path.isfile(outbox), 'the outbox is %s' % outbox)
        self.assertGreater(os.path.getsize(outbox), 0)
        srv.proc.kill()  # SIGKILL to the duetd we started
        self.assertEqual(srv.wait(), -9)
        self.assertFalse(hooks.deliveries(), 'nothing was delivered before the kill')

        hooks.set_mode('ok')
        srv2 = self.start_server(hooks, state_dir=state)
        await asyncio.to_thread(srv2.wait_for_log, sending_line(hooks.url, 4), WAIT)
        got = await self.wait_events(hooks, lambda body: True, 4, 'the four events again')
        self.assertEqual({r['id'] for r in got}, set(before), 'the same ids: %r' % got)
        for r in got:
            self.assertEqual(r['body'], before[r['id']], 'the same event under the same id')
            self.assertRequestsVerified(hooks, r['id'])
        for a, b in calls:
            self.assertTrue([r for r in got if started(b.name, a.name)(r['body'])])
            self.assertTrue([r for r in got if ended(a.name, b.name)(r['body'])])
        await metric_reaches(srv2, 'webhooks_sent_total', lambda v: v == 4, 'the four sent by the new duetd')
        await metric_reaches(srv2, 'webhooks_pending', lambda v: v == 0, 'nothing pending')


# ---------------------------------------------------------------------------
# Keepalive, a server shutdown, redirects
# ---------------------------------------------------------------------------

class KeepaliveTimeoutTest(PerTestServerCase):

    async def test_a_client_silent_past_the_keepalive_timeout_ends_its_call_as_timeout(self):
        hooks = self.start_receiver('ok')
        srv = self.start_server(hooks, extra=KEEPALIVE_FAST_ARGS)
        a_id, b_id = unique_id('a'), unique_id('b')
        a = await self.connect(a_id)
        await a.open(a_id, b_id)
        await a.synced()
        b = await self.connect(b_id)
        await b.open(b_id, a_id)
        # The server's JSON pings (every 0.4 s here) may come first.
        self.assertEqual(await recv_besides_pings(a, WAIT), {'start': 'answer'})
        self.assertEqual(await recv_besides_pings(b, WAIT), {'start': 'offer'})
        await self.wait_event(hooks, started(b_id, a_id), 'call.started')
        stop_answering_ping_frames(b)  # b sends nothing from now on
        self.assertEqual(await recv_besides_pings(a, KEEPALIVE_CLOSE_DEADLINE + WAIT), {'close': 1})
        code, _ = await b.expect_close()
        self.assertEqual(code, 4408, 'closed by keepalive')
        end = await self.wait_event(hooks, ended(b_id, a_id), 'call.ended')
        self.assertEvent(end, 'call.ended', {'ended_by': b_id, 'other': a_id, 'how': 'timeout',
                                             'duration_ms': None, 'node': NODE_ID}, hooks)
        self.assertGreaterEqual(metric(srv, 'webhooks_sent_total'), 2)


class ShutdownTest(PerTestServerCase):

    async def test_a_call_a_sigterm_ends_is_in_the_outbox_at_exit_and_arrives_as_server_shutdown(self):
        # ok: the receiver takes events up to the exit (the call.ended may go
        # before it or after the restart); fail: it takes none, so the
        # call.ended waits in the outbox for the next duetd.
        for mode in ('ok', 'fail'):
            with self.subTest(receiver=mode):
                await self.sigterm_mid_call(mode)

    async def sigterm_mid_call(self, mode):
        state = os.path.join(self.tmp, 'state-' + mode)
        hooks = self.start_receiver('ok')
        srv = self.start_server(hooks, state_dir=state)
        a, b = await self.call(hang_up=False)
        await self.wait_event(hooks, started(b.name, a.name), 'call.started')
        hooks.set_mode(mode)
        await asyncio.sleep(0.05)  # a duration_ms above 0
        rc = await asyncio.to_thread(srv.stop)  # SIGTERM mid-call
        self.assertEqual(rc, 0, 'duetd exits 0 on SIGTERM:\n%s' % srv.log()[-5000:])
        outbox = os.path.join(state, 'webhooks', 'outbox.jsonl')
        in_file = [e for e in read_outbox(outbox)
                   if e['body'].get('type') == 'call.ended' and about(a.name, b.name)(e['body'])]
        self.assertEqual(len(in_file), 1, 'the call\'s call.ended is in %s at exit: %r\nduetd log:\n%s'
                         % (outbox, read_outbox(outbox), srv.log()[-5000:]))
        stored = in_file[0]
        self.assertEqual(stored['body']['data']['how'], 'server-shutdown', stored)
        if mode == 'fail':
            self.assertFalse(stored['delivered'], 'the receiver took nothing: %r' % stored)
        waiting = len(pending_in_outbox(outbox))

        # A new duetd on the same state folder sends what waits (at least once).
        hooks.set_mode('ok')
        srv2 = self.start_server(hooks, state_dir=state)
        await asyncio.to_thread(srv2.wait_for_log, sending_line(hooks.url, waiting), WAIT)
        end = await self.wait_event(hooks, lambda body: body.get('type') == 'call.ended'
                                    and about(a.name, b.name)(body), 'the call.ended of the shutdown')
        self.assertEqual(end['id'], stored['id'], 'the id written to the outbox')
        self.assertEqual(end['body'], stored['body'])
        data = end['body']['data']
        self.assertEqual({data.get('ended_by'), data.get('other')}, {a.name, b.name}, data)
        self.assertEvent(end, 'call.ended', {'ended_by': data['ended_by'], 'other': data['other'],
                                             'how': 'server-shutdown', 'duration_ms': None, 'node': NODE_ID},
                         hooks)
        await metric_reaches(srv2, 'webhooks_pending', lambda v: v == 0, 'nothing pending')
        self.assertEqual(pending_in_outbox(outbox), [])
        stop_checked(srv2)


class RedirectTest(PerTestServerCase):

    async def test_a_redirect_is_not_followed_it_counts_as_failed_and_the_event_goes_when_the_receiver_is_back(self):
        hooks = self.start_receiver('redirect')
        srv = self.start_server(hooks)
        a, b = await self.call()
        await metric_reaches(srv, 'webhooks_queued_total', lambda v: v == 2, 'two events queued')
        await metric_reaches(srv, 'webhooks_failed_total', lambda v: v >= 2, 'two failed attempts')
        redirected = [r for r in hooks.requests() if r['status'] == 307]
        self.assertTrue(redirected, 'the receiver answered 307:\n%s' % hooks.log())
        for r in hooks.requests():
            self.assertEqual(r['path'], '/hook', 'nothing reaches the redirect\'s target: %r' % r)
            self.assertTrue(r['verified'], r)
        self.assertEqual(hooks.deliveries(), [])
        self.assertEqual(metric(srv, 'webhooks_sent_total'), 0)
        self.assertEqual(metric(srv, 'webhooks_pending'), 2)
        hooks.set_mode('ok')
        got = await self.wait_events(hooks, about(a.name, b.name), 2, 'both events once the receiver is back')
        self.assertEqual({r['body']['type'] for r in got}, {'call.started', 'call.ended'})
        self.assertLessEqual({r['id'] for r in redirected}, {r['id'] for r in got},
                             'the events redirected are the ones delivered: %r' % redirected)
        await metric_reaches(srv, 'webhooks_pending', lambda v: v == 0, 'nothing pending')
        self.assertEqual(metric(srv, 'webhooks_sent_total'), 2)
        self.assertEqual([r for r in hooks.requests() if r['path'] == REDIRECT_PATH], [],
                         'the redirect\'s target never saw a request')


class AllowedAddressesTest(PerTestServerCase):

    async def test_a_host_outside_the_allowed_addresses_gets_nothing_and_the_events_wait_for_a_list_that_has_it(self):
        hooks = self.start_receiver()
        state = os.path.join(self.tmp, 'state')
        # The receiver is on 127.0.0.1, which the list leaves out.
        srv = self.start_server(hooks, state_dir=state,
                                extra=['--plugin-opt', 'webhooks.allowed-addresses=10.0.0.0/8, ::1/128'])
        a, b = await self.call()
        await metric_reaches(srv, 'webhooks_failed_total', lambda v: v >= 1, 'a refused attempt')
        await asyncio.sleep(0.5)
        self.assertEqual(hooks.requests(), [], 'a request reached a host outside the list')
        self.assertEqual(metric(srv, 'webhooks_pending'), 2)
        self.assertIn('is not an address webhooks may use', srv.log())
        self.assertEqual(await asyncio.to_thread(srv.stop), 0)
        srv2 = self.start_server(hooks, state_dir=state,
                                 extra=['--plugin-opt', 'webhooks.allowed-addresses=10.0.0.0/8,127.0.0.0/8'])
        got = await self.wait_events(hooks, about(a.name, b.name), 2, 'both events once the list has the receiver')
        self.assertEqual({r['body']['type'] for r in got}, {'call.started', 'call.ended'})
        await metric_reaches(srv2, 'webhooks_pending', lambda v: v == 0, 'nothing pending')

    def test_a_bad_list_is_refused_at_start(self):
        for value in ('hooks.example.org', '10.0.0.0/33', '::/200', '10.0.0.0/8,,x'):
            with self.subTest(value=value):
                proc = run_duetd(['--address', '127.0.0.1', '--port', '0', '--state-dir', os.path.join(self.tmp, 's'),
                                  '--plugin-opt', 'webhooks.allowed-addresses=' + value])
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertIn('webhooks.allowed-addresses', proc.stderr)


# ---------------------------------------------------------------------------
# --workers: an outbox per worker, taken over by a single process
# ---------------------------------------------------------------------------

class RedisCase(PerTestServerCase):
    """A redis-server of the test's own (skipped without one)."""

    async def asyncSetUp(self):
        await super().asyncSetUp()
        require_redis()
        require_cluster_support()
        self.redis = RedisServer().__enter__()
        self.addCleanup(self.redis.cleanup)

    async def cross_call(self, server_a=None, server_b=None):
        """A call as quick_call makes it, where a and b may be on different
        nodes (or workers): b opens once a's place is in Redis. Returns
        (a id, b id)."""
        a_id, b_id = unique_id('a'), unique_id('b')
        a = await self.connect(a_id, server=server_a)
        await a.open(a_id, b_id)
        await eventually(lambda: self.redis.place(a_id) is not None, what='a place for %s in Redis' % a_id)
        b = await self.connect(b_id, server=server_b)
        await b.open(b_id, a_id)
        self.assertEqual(await a.recv_json(), {'start': 'answer'})
        self.assertEqual(await b.recv_json(), {'start': 'offer'})
        await a.close()
        self.assertEqual(await b.recv_json(), {'close': 1})
        await b.close()
        return a_id, b_id


class WorkersTest(RedisCase):

    async def test_each_worker_has_its_own_outbox_and_a_single_process_takes_their_events_over(self):
        state = os.path.join(self.tmp, 'state')
        folder = os.path.join(state, 'webhooks')
        files = {w: os.path.join(folder, 'outbox-w%d.jsonl' % w) for w in (1, 2)}
        nodes = {w: '%s-w%d' % (NODE_ID, w) for w in (1, 2)}
        hooks = self.start_receiver('ok')
        srv = self.start_server(hooks, state_dir=state, extra=['--workers', '2'] + cluster_args(self.redis))
        await eventually(lambda: listening_workers(srv) == {1, 2}, what='both workers listening')

        # Calls until events came from both workers (the kernel spreads the
        # connections by address).
        for _ in range(30):
            await self.cross_call()
            if {r['body']['data'].get('node') for r in hooks.deliveries()} >= set(nodes.values()):
                break
        self.assertEqual({r['body']['data'].get('node') for r in hooks.deliveries()}, set(nodes.values()),
                         'events from both workers arrived:\n%s' % hooks.log())
        for r in hooks.requests():
            self.assertTrue(r['verified'], r)
        for w, path in files.items():
            events = read_outbox(path)
            self.assertTrue(events, 'worker %d writes %s: %s' % (w, path, os.listdir(folder)))
            self.assertEqual({e['body']['data']['node'] for e in events}, {nodes[w]},
                             'each worker writes its own events to its own outbox')

        # The receiver down: events wait in both files.
        hooks.set_mode('fail')
        for _ in range(30):
            await self.cross_call()
            if all(pending_in_outbox(path) for path in files.values()):
                break
        rc = await asyncio.to_thread(srv.stop)
        self.assertEqual(rc, 0, 'the supervisor exits 0 on SIGTERM:\n%s' % srv.log()[-5000:])
        waiting = {w: pending_in_outbox(path) for w, path in files.items()}
        self.assertTrue(all(waiting.values()), 'events wait in both worker outboxes: %r' % waiting)
        # (what any outbox.jsonl holds now is delivered or taken over too: counted in the start line)
        single = pending_in_outbox(os.path.join(folder, 'outbox.jsonl'))
        wanted = {e['id']: e['body'] for events in waiting.values() for e in events}

        # One process, no --workers, the receiver back: it takes the worker
        # files over and sends their events under their ids.
        hooks.set_mode('ok')
        srv2 = self.start_server(hooks, state_dir=state)
        for w, path in files.items():
            await asyncio.to_thread(srv2.wait_for_log, r'took over %d event\(s\) from %s'
                                    % (len(waiting[w]), re.escape(path)), WAIT)
        await asyncio.to_thread(srv2.wait_for_log, sending_line(hooks.url, len(wanted) + len(single)), WAIT)
        got = await asyncio.to_thread(
            hooks.wait_requests, lambda rs: set(wanted) <= {r['id'] for r in rs if delivered(r)},
            'the %d events of the worker outboxes delivered' % len(wanted), DELIVERY_WAIT)
        self.assertTrue(got)
        for r in hooks.deliveries():
            if r['id'] in wanted:
                self.assertEqual(r['body'], wanted[r['id']], 'the same event under the same id')
                self.assertRequestsVerified(hooks, r['id'])
        for w, path in files.items():
            self.assertFalse(os.path.exists(path), 'worker %d\'s outbox is gone: %s' % (w, os.listdir(folder)))
            self.assertFalse(os.path.exists(path + '.lock'), os.listdir(folder))
        await metric_reaches(srv2, 'webhooks_pending', lambda v: v == 0, 'nothing pending')


# ---------------------------------------------------------------------------
# A cluster: the node of the side left reports node-lost
# ---------------------------------------------------------------------------

class NodeLostTest(RedisCase):

    async def test_a_call_whose_other_node_is_killed_ends_as_node_lost_from_the_node_left(self):
        hooks = self.start_receiver('ok')
        nodes = []
        for i in range(2):
            node = start_node(self.redis, 'node-%d' % i, hooks.duetd_args() + FAST_RETRY,
                              state_dir=os.path.join(self.tmp, 'state-%d' % i))
            self.addCleanup(stop_checked if i == 0 else Server.cleanup, node)
            nodes.append(node)
        self._server = nodes[0]  # checked alive at the end
        alice_id, bob_id = unique_id('alice'), unique_id('bob')
        alice = await self.connect(alice_id, server=nodes[0])
        await alice.open(alice_id, bob_id)
        await eventually(lambda: self.redis.place(alice_id) is not None, what='a place for alice in Redis')
        bob = await self.connect(bob_id, server=nodes[1])
        await bob.open(bob_id, alice_id)
        self.assertEqual(await alice.recv_json(), {'start': 'answer'})
        self.assertEqual(await bob.recv_json(), {'start': 'offer'})
        start = await self.wait_event(hooks, started(bob_id, alice_id), 'call.started')
        self.assertIn(start['body']['data']['node'], ('node-0', 'node-1'), start)
        nodes[1].proc.kill()  # SIGKILL to the duetd we started
        self.assertEqual(nodes[1].wait(), -9)
        self.assertEqual(await alice.recv_json(NODE_DEATH_LIMIT + WAIT), {'close': 1})
        end = await self.wait_event(hooks, ended(bob_id, alice_id), 'call.ended')
        self.assertEvent(end, 'call.ended', {'ended_by': bob_id, 'other': alice_id, 'how': 'node-lost',
                                             'duration_ms': None, 'node': 'node-0'}, hooks)
        self.assertEqual(len(hooks.wait_events(about(alice_id, bob_id), 2)), 2, 'one call.started, one call.ended')


# ---------------------------------------------------------------------------
# A full outbox
# ---------------------------------------------------------------------------

class OutboxFullTest(PerTestServerCase):

    async def test_a_full_outbox_drops_events_logs_an_error_and_calls_go_on(self):
        hooks = self.start_receiver('fail')
        srv = self.start_server(hooks, extra=['--plugin-opt', 'webhooks.outbox-bytes=4096'])
        began = time.monotonic()
        made = 0
        while made < 100:
            await self.quick_call()
            made += 1
            if metric(srv, 'webhooks_dropped_total') > 0:
                break
        self.assertGreater(metric(srv, 'webhooks_dropped_total'), 0,
                           'a 4096-byte outbox holds fewer than %d events' % (2 * made))
        line = await eventually(
            lambda: [ln for ln in srv.log().splitlines()
                     if ' error: ' in ln and 'webhook outbox' in ln and 'is full' in ln],
            what='the ERROR line of a full outbox')
        if time.monotonic() - began < 55:
            self.assertEqual(len(line), 1, 'at most one line a minute: %r' % line)
        self.assertLessEqual(metric(srv, 'webhooks_outbox_bytes'), 4096)
        # Every event is either queued or dropped.
        await metric_reaches(srv, 'webhooks_queued_total',
                             lambda v: v + metric(srv, 'webhooks_dropped_total') == 2 * made,
                             'queued + dropped = the %d events of %d calls' % (2 * made, made))
        # Calls go on: sdp and ice are relayed as ever.
        a, b = await self.call()
        self.assertLessEqual(metric(srv, 'webhooks_outbox_bytes'), 4096)
        srv.assert_alive()
        # The receiver back: what was queued is sent, nothing more.
        queued = metric(srv, 'webhooks_queued_total')
        hooks.set_mode('ok')
        await metric_reaches(srv, 'webhooks_pending', lambda v: v == 0, 'the outbox drained')
        self.assertEqual(metric(srv, 'webhooks_sent_total'), queued)
        self.assertEqual(len(hooks.deliveries()), queued, 'one delivery per queued event')


# ---------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------

class OptionsTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='duet-webhooks-opt-')
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.base = ['--address', '127.0.0.1', '--port', '0', '--state-dir', os.path.join(self.tmp, 'state')]
        self.secret = os.path.join(self.tmp, 'secret')
        write_secret(self.secret)

    def secret_file(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def assertRefused(self, args, names):
        proc = run_duetd(self.base + args)
        self.assertEqual(proc.returncode, 2, '%s: exit code (stderr %r)' % (args, proc.stderr))
        self.assertTrue(any(re.search(n, proc.stderr) for n in names),
                        '%s: the error names %s: %r' % (args, ' or '.join(names), proc.stderr))
        self.assertNotIn('listening on', proc.stderr)

    # '--webhook' alone, not as the start of '--webhook-secret'
    URL_NAMES = (r'--webhook(?![-\w])', r'webhooks\.url')
    SECRET_NAMES = (r'--webhook-secret', r'webhooks\.secret-file')

    def test_a_url_that_is_not_https_or_loopback_http_is_refused(self):
        for url in ('http://192.0.2.1/hook', 'http://example.org/hook', 'http://10.0.0.1:8080/',
                    'http://127.0.0.1.example.org/', 'ftp://127.0.0.1/hook', 'not a url'):
            with self.subTest(url=url):
                self.assertRefused(['--webhook', url, '--webhook-secret', self.secret], self.URL_NAMES)
        self.assertRefused(['--plugin-opt', 'webhooks.url=http://192.0.2.1/hook',
                            '--plugin-opt', 'webhooks.secret-file=' + self.secret], self.URL_NAMES)

    def test_a_missing_or_bad_secret_is_refused(self):
        url = ['--webhook', 'https://127.0.0.1:9/hook']
        self.assertRefused(url, self.SECRET_NAMES)
        self.assertRefused(url + ['--webhook-secret', os.path.join(self.tmp, 'no-such-file')], self.SECRET_NAMES)
        for name, text in (('plain', 'a-secret-that-is-long-enough-but-no-whsec\n'),
                           ('not-base64', 'whsec_@@@not*base64!!!\n'),
                           ('short', 'whsec_' + base64.b64encode(secrets.token_bytes(16)).decode() + '\n'),
                           ('empty', '')):
            with self.subTest(secret=name):
                self.assertRefused(url + ['--webhook-secret', self.secret_file(name, text)], self.SECRET_NAMES)

    def test_values_below_their_minimum_are_refused(self):
        url = ['--webhook', 'https://127.0.0.1:9/hook', '--webhook-secret', self.secret]
        for option in ('outbox-bytes=4095', 'max-backoff=50ms'):
            with self.subTest(option=option):
                self.assertRefused(url + ['--plugin-opt', 'webhooks.' + option],
                                   (r'webhooks\.' + re.escape(option.split('=')[0]),))

    def test_https_and_loopback_http_are_taken(self):
        for url in ('https://hooks.example.org/duet', 'http://127.0.0.1:9/hook', 'http://localhost:9/hook',
                    'http://[::1]:9/hook'):
            with self.subTest(url=url):
                srv = Server(extra_args=['--webhook', url, '--webhook-secret', self.secret])
                srv.__enter__()
                try:
                    srv.wait_for_log(sending_line(url, 0))
                finally:
                    stop_checked(srv)


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------

class MetricsTest(PerTestServerCase):

    async def test_the_metrics_are_there_with_their_types_and_count_what_happened(self):
        hooks = self.start_receiver('ok')
        srv = self.start_server(hooks)
        s = scrape(srv)
        for name in COUNTERS:
            self.assertEqual(s.types.get('duet_' + name), 'counter', name + ':\n' + s.text)
            self.assertEqual(s.value('duet_' + name), 0, name)
        for name in GAUGES:
            self.assertEqual(s.types.get('duet_' + name), 'gauge', name + ':\n' + s.text)
        self.assertEqual(s.value('duet_webhooks_pending'), 0)
        self.assertGreaterEqual(s.value('duet_webhooks_outbox_bytes'), 0)

        a, b = await self.call()
        await self.wait_events(hooks, about(a.name, b.name), 2, 'the call\'s two events')
        await metric_reaches(srv, 'webhooks_sent_total', lambda v: v == 2, 'two sent')
        s = scrape(srv)
        self.assertEqual(s.value('duet_webhooks_queued_total'), 2)
        self.assertEqual(s.value('duet_webhooks_pending'), 0)
        for name in ('failed', 'retried', 'expired', 'dropped'):
            self.assertEqual(s.value('duet_webhooks_%s_total' % name), 0, name)
        self.assertGreaterEqual(s.value('duet_webhooks_delay_milliseconds_total'), 0)
        self.assertLess(s.value('duet_webhooks_delay_milliseconds_total'), 2 * DELIVERY_WAIT * 1000)

        # The receiver down: the next call's events wait in the outbox.
        hooks.set_mode('fail')
        c, d = await self.call()
        await metric_reaches(srv, 'webhooks_queued_total', lambda v: v == 4, 'four queued')
        await metric_reaches(srv, 'webhooks_failed_total', lambda v: v >= 1, 'a failed attempt')
        s = scrape(srv)
        self.assertEqual(s.value('duet_webhooks_pending'), 2)
        self.assertEqual(s.value('duet_webhooks_sent_total'), 2)
        self.assertGreater(s.value('duet_webhooks_outbox_bytes'), 0, 'two events are in the file')
        hooks.set_mode('ok')
        await self.wait_events(hooks, about(c.name, d.name), 2, 'the second call\'s events')
        await metric_reaches(srv, 'webhooks_pending', lambda v: v == 0, 'nothing pending')
        s = scrape(srv)
        self.assertEqual(s.value('duet_webhooks_sent_total'), 4)
        self.assertGreater(s.value('duet_webhooks_retried_total'), 0)
        # The second call's two events waited at least one failed attempt.
        self.assertGreater(s.value('duet_webhooks_delay_milliseconds_total'), 0)


# ---------------------------------------------------------------------------
# A delivery figure (printed, not asserted)
# ---------------------------------------------------------------------------

class DeliveryFigureTest(PerTestServerCase):

    CALLS = 250  # 500 events
    AT_ONCE = 10  # calls made at the same time
    # Seconds of making calls at most: on a machine busy with other test runs
    # the test's TLS clients slow down several times over, and the whole file
    # must stay within its meson timeout. Fewer calls then, said in the figure.
    BUDGET = 45.0

    async def test_print_the_delivery_rate_and_delay_of_500_events_to_a_healthy_receiver(self):
        hooks = self.start_receiver('ok')
        srv = self.start_server(hooks)
        began = time.time()
        calls = 0
        while calls < self.CALLS and time.time() - began < self.BUDGET:
            batch = min(self.AT_ONCE, self.CALLS - calls)
            await asyncio.gather(*(self.quick_call() for _ in range(batch)))
            calls += batch
            # Closed clients need not wait for the test's end.
            for c in self._clients:
                await c.close()
            self._clients = []
        made = time.time() - began
        n = 2 * calls
        got = await self.wait_events(hooks, lambda body: True, n, '%d events' % n)
        self.assertEqual(len(got), n, 'every event arrived, each id once among the deliveries')
        self.assertTrue(all(r['verified'] for r in hooks.requests()))
        delays = [r['received_ms'] - body_time_ms(r['body']) for r in got]
        first_ms = min(body_time_ms(r['body']) for r in got)
        last_ms = max(r['received_ms'] for r in got)
        span = max(0.001, (last_ms - first_ms) / 1000)
        # The rate cannot be above the rate the test makes events at (its TLS
        # clients are the slow part): the delay is the figure of the plugin.
        sys.stderr.write('\nwebhooks delivery figure: %d events of %d calls made in %.1f s (%d at once, %.0f '
                         'events/s made): %.0f events/s delivered from the first event made to the last '
                         'received; delay (received minus the event\'s timestamp) p50 %.0f ms, p99 %.0f ms, '
                         'max %.0f ms, %d over 1 s; %d requests for %d events%s\n'
                         % (n, calls, made, self.AT_ONCE, n / made, n / span, percentile(delays, 50),
                            percentile(delays, 99), max(delays), sum(1 for d in delays if d > 1000),
                            len(hooks.requests()), n,
                            '' if calls == self.CALLS else ' (the %.0f s budget cut it short: a busy machine)'
                            % self.BUDGET))
        await metric_reaches(srv, 'webhooks_sent_total', lambda v: v == n, 'all sent')


if __name__ == '__main__':
    unittest.main()
