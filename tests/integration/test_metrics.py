"""GET /healthz and GET /metrics: their formats, that the numbers match what
clients did, --no-health / --no-metrics, and --admin-listen (a separate
plain-HTTP port that serves only these two paths).

Run: DUETD=build/core/duetd /usr/bin/python3 tests/integration/test_metrics.py
"""

import asyncio
import http.client
import json
import re
import shutil
import socket
import tempfile
import time
import unittest

from duet_harness import WAIT, DuetTestCase, Server, raw_request, run_duetd, unique_id

METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
CLOSE_REASONS = {'client', 'server', 'shutdown', 'timeout', 'limit', 'takeover'}

# name -> type, for the metrics the core and the pairing plugin must expose.
REQUIRED_METRICS = {
    'duet_connections_open': 'gauge',
    'duet_connections_accepted_total': 'counter',
    'duet_connections_closed_total': 'counter',
    'duet_messages_received_total': 'counter',
    'duet_errors_total': 'counter',
    'duet_pairing_pairs_active': 'gauge',
    'duet_pairing_relayed_sdp_total': 'counter',
    'duet_pairing_relayed_ice_total': 'counter',
    'duet_process_resident_memory_bytes': 'gauge',
    'duet_uptime_seconds': 'gauge',
}


# ---------------------------------------------------------------------------
# A strict parser for the Prometheus text format (version 0.0.4)
# ---------------------------------------------------------------------------

_NAME = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
_LABEL_NAME = r'[a-zA-Z_][a-zA-Z0-9_]*'
_NUMBER = r'[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN'
HELP_RE = re.compile(r'# HELP (%s) (.*)$' % _NAME)
TYPE_RE = re.compile(r'# TYPE (%s) (counter|gauge)$' % _NAME)
SAMPLE_RE = re.compile(r'(%s)(\{[^\n]*\})? (%s)$' % (_NAME, _NUMBER))
LABEL_RE = re.compile(r'(%s)="((?:[^"\\\n]|\\[\\"n])*)"' % _LABEL_NAME)


class MetricsFormatError(AssertionError):
    pass


def _parse_labels(text, line):
    """'{a="x",b="y"}' -> (('a','x'),('b','y')) sorted; strict syntax."""
    inner = text[1:-1]
    labels = {}
    pos = 0
    while pos < len(inner):
        m = LABEL_RE.match(inner, pos)
        if not m:
            raise MetricsFormatError('bad label syntax at %r in line %r' % (inner[pos:], line))
        name = m.group(1)
        value = re.sub(r'\\(.)', lambda e: {'n': '\n'}.get(e.group(1), e.group(1)), m.group(2))
        if name in labels:
            raise MetricsFormatError('label %r twice in line %r' % (name, line))
        labels[name] = value
        pos = m.end()
        if pos < len(inner):
            if inner[pos] != ',':
                raise MetricsFormatError('expected "," between labels in line %r' % line)
            pos += 1
            if pos == len(inner):  # a trailing comma is allowed by the format
                break
    return tuple(sorted(labels.items()))


def parse_metrics(text):
    """Parse an exposition; returns (types, samples) where types maps metric
    name -> 'counter'|'gauge' and samples maps (name, labels) -> float, labels
    being a sorted tuple of (name, value) pairs. Raises MetricsFormatError on
    anything the contract does not allow: a line that is neither a HELP/TYPE
    comment nor a sample, a sample without a TYPE line before it, a metric
    whose lines are not one group, a duplicate sample, a bad label or value."""
    if text and not text.endswith('\n'):
        raise MetricsFormatError('the exposition does not end with a newline')
    types, helps, samples = {}, set(), {}
    current = None  # the metric family whose lines we are in
    finished = set()  # families whose group has ended
    for line in text.split('\n')[:-1] if text else []:
        if line == '':
            continue  # the format ignores empty lines
        if line.startswith('#'):
            m = HELP_RE.match(line)
            kind = 'HELP'
            if not m:
                m = TYPE_RE.match(line)
                kind = 'TYPE'
            if not m:
                raise MetricsFormatError('not a HELP or TYPE line (or a bad type): %r' % line)
            name = m.group(1)
            if name != current:
                if current is not None:
                    finished.add(current)
                if name in finished:
                    raise MetricsFormatError('lines for %s are not one group (at %r)' % (name, line))
                current = name
            if kind == 'HELP':
                if name in helps:
                    raise MetricsFormatError('a second HELP for %s' % name)
                if name in types:
                    raise MetricsFormatError('HELP after TYPE/samples for %s' % name)
                helps.add(name)
            else:
                if name in types:
                    raise MetricsFormatError('a second TYPE for %s' % name)
                if any(n == name for n, _ in samples):
                    raise MetricsFormatError('TYPE after samples for %s' % name)
                types[name] = m.group(2)
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            raise MetricsFormatError('not a valid sample line: %r' % line)
        name, label_text, value_text = m.group(1), m.group(2), m.group(3)
        if name not in types:
            raise MetricsFormatError('sample %r has no TYPE line before it' % line)
        if name != current:
            raise MetricsFormatError('sample %r is outside the group of %s' % (line, name))
        labels = _parse_labels(label_text, line) if label_text else ()
        key = (name, labels)
        if key in samples:
            raise MetricsFormatError('duplicate sample %r' % line)
        value = float(value_text)
        if types[name] == 'counter' and not (value >= 0):
            raise MetricsFormatError('counter sample %r is negative or NaN' % line)
        samples[key] = value
    return types, samples


def labels(**kw):
    return tuple(sorted(kw.items()))


def plain_get(host, port, path, timeout=5.0):
    """A plain-HTTP GET; returns (status, content_type, body)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request('GET', path)
        resp = conn.getresponse()
        return resp.status, resp.getheader('Content-Type'), resp.read()
    finally:
        conn.close()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Scrape:
    """One parsed GET /metrics."""

    def __init__(self, text):
        self.text = text
        self.types, self.samples = parse_metrics(text)

    def value(self, name, **kw):
        """The sample's value; a missing labelled counter sample counts as 0
        (a code or reason not seen yet need not have a line)."""
        key = (name, labels(**kw))
        if key in self.samples:
            return self.samples[key]
        if kw and self.types.get(name) == 'counter':
            return 0.0
        raise AssertionError('no sample %s%r in /metrics:\n%s' % (name, kw, self.text))

    def label_values(self, name, label):
        return {dict(lb).get(label) for (n, lb) in self.samples if n == name}


def scrape(srv, admin=None):
    """GET /metrics (from the admin port when given as (host, port))."""
    if admin:
        status, ctype, body = plain_get(admin[0], admin[1], '/metrics')
    else:
        r = raw_request(srv, ('GET', '/metrics'))
        status, ctype, body = r.status, r.header('Content-Type'), r.body
    if status != 200:
        raise AssertionError('GET /metrics: status %s, body %r' % (status, body[:300]))
    if ctype != METRICS_CONTENT_TYPE:
        raise AssertionError('GET /metrics: Content-Type %r, expected %r' % (ctype, METRICS_CONTENT_TYPE))
    return Scrape(body.decode('utf-8'))


def healthz(srv, admin=None):
    if admin:
        status, ctype, body = plain_get(admin[0], admin[1], '/healthz')
    else:
        r = raw_request(srv, ('GET', '/healthz'))
        status, ctype, body = r.status, r.header('Content-Type'), r.body
    if status != 200:
        raise AssertionError('GET /healthz: status %s, body %r' % (status, body[:300]))
    if ctype is None or ctype.split(';')[0].strip().lower() != 'application/json':
        raise AssertionError('GET /healthz: Content-Type %r, expected application/json' % ctype)
    try:
        obj = json.loads(body)
    except ValueError:
        raise AssertionError('GET /healthz: body is not JSON: %r' % body[:300])
    if not isinstance(obj, dict):
        raise AssertionError('GET /healthz: body is not an object: %r' % body[:300])
    return obj


async def wait_for_metric(srv, name, expected, timeout=WAIT, admin=None, **kw):
    """Scrape until name{kw} == expected (closes are noticed asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        s = scrape(srv, admin)
        if s.value(name, **kw) == expected:
            return s
        if time.monotonic() > deadline:
            raise AssertionError('%s%r stayed %r (expected %r) for %.1f s:\n%s'
                                 % (name, kw, s.value(name, **kw), expected, timeout, s.text))
        await asyncio.sleep(0.05)


def assert_counters_did_not_decrease(test, before, after):
    for (name, lb), old in before.samples.items():
        if before.types.get(name) != 'counter':
            continue
        test.assertIn((name, lb), after.samples,
                      'counter sample %s%r disappeared between two scrapes' % (name, lb))
        test.assertGreaterEqual(after.samples[(name, lb)], old,
                                'counter %s%r went down between two scrapes' % (name, lb))


class MetricsCase(DuetTestCase):
    """Each test gets a fresh duetd, so counters start at zero."""

    server_args = []  # None: no server of the class's own

    async def asyncSetUp(self):
        await super().asyncSetUp()
        if self.server_args is not None:
            self.server = self.start_server(self.server_args)

    def start_server(self, args, **kwargs):
        srv = Server(extra_args=args, **kwargs)
        srv.__enter__()
        self.addCleanup(srv.__exit__, None, None, None)
        if self.server is None:
            self.server = srv  # checked for being alive after the test
        return srv

    async def hang_up(self, *clients):
        for c in clients:
            await c.close()


class ParserSelfTest(unittest.TestCase):
    """The parser above must reject what the format forbids, or the format
    tests below could not fail."""

    GOOD = ('# HELP duet_x X.\n# TYPE duet_x counter\nduet_x{a="1",b="q\\"x"} 3\n'
            'duet_x{a="2"} 4.5e3\n# TYPE duet_y gauge\nduet_y -1\n')

    def test_the_parser_accepts_a_valid_exposition(self):
        types, samples = parse_metrics(self.GOOD)
        self.assertEqual(types, {'duet_x': 'counter', 'duet_y': 'gauge'})
        self.assertEqual(samples[('duet_x', labels(a='1', b='q"x'))], 3)
        self.assertEqual(samples[('duet_x', labels(a='2'))], 4500)
        self.assertEqual(samples[('duet_y', ())], -1)

    def test_the_parser_rejects_what_the_format_forbids(self):
        bad = [
            'duet_x 1\n',                                         # no TYPE
            '# TYPE duet_x counter\nduet_x 1',                    # no final newline
            '# TYPE duet_x counter\nduet_x one\n',               # value
            '# TYPE duet_x counter\nduet_x 1_0\n',               # value
            '# TYPE duet_x counter\nduet_x{a=1} 1\n',            # label value unquoted
            '# TYPE duet_x counter\nduet_x{a="1"}} 1\n',         # label syntax
            '# TYPE duet_x counter\nduet_x{a="1" b="2"} 1\n',    # label syntax
            '# TYPE duet_x counter\nduet_x 1\nduet_x 2\n',      # duplicate
            '# TYPE duet_x counter\nduet_x -1\n',                # negative counter
            '# TYPE duet_x summary\nduet_x 1\n',                 # not counter|gauge
            '# TYPE duet_x counter\n# TYPE duet_x counter\nduet_x 1\n',
            '# TYPE duet_x counter\n# TYPE duet_y gauge\nduet_x 1\n',    # outside group
            '# comment\n# TYPE duet_x counter\nduet_x 1\n',     # other comment
            '# TYPE duet_x counter\nduet_x 1 1700000000\n',      # timestamp
            '# TYPE duet_x counter\n duet_x 1\n',
        ]
        for text in bad:
            with self.assertRaises(MetricsFormatError, msg=repr(text)):
                parse_metrics(text)


# ---------------------------------------------------------------------------

class HealthzTest(MetricsCase):

    async def test_healthz_answers_ok_json_with_no_connections_on_a_fresh_server(self):
        r = raw_request(self.server, ('GET', '/healthz'))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header('Content-Type').split(';')[0].strip(), 'application/json')
        obj = json.loads(r.body)
        self.assertEqual(obj.get('status'), 'ok', obj)
        self.assertIs(type(obj.get('connections')), int, obj)
        self.assertEqual(obj['connections'], 0, obj)
        self.assertIn(type(obj.get('uptime_s')), (int, float), obj)
        self.assertGreaterEqual(obj['uptime_s'], 0)
        self.assertLess(obj['uptime_s'], 60)
        self.assertEqual(obj.get('pid'), self.server.pid, obj)

    async def test_healthz_counts_open_websockets_and_not_itself(self):
        a = await self.connect('a')
        b = await self.connect('b')
        self.assertEqual(await a.ping_pong(), {'pong': 1})
        self.assertEqual(await b.ping_pong(), {'pong': 1})
        self.assertEqual(healthz(self.server)['connections'], 2)
        await a.close()
        deadline = time.monotonic() + WAIT
        while healthz(self.server)['connections'] != 1:
            self.assertLess(time.monotonic(), deadline,
                            'healthz still counts a closed WebSocket: %r' % healthz(self.server))
            await asyncio.sleep(0.05)
        await b.close()
        deadline = time.monotonic() + WAIT
        while healthz(self.server)['connections'] != 0:
            self.assertLess(time.monotonic(), deadline,
                            'healthz still counts a closed WebSocket: %r' % healthz(self.server))
            await asyncio.sleep(0.05)
        await self.assert_server_still_pairs()

    async def test_healthz_uptime_grows(self):
        first = healthz(self.server)['uptime_s']
        await asyncio.sleep(0.3)
        second = healthz(self.server)['uptime_s']
        self.assertGreaterEqual(second - first, 0.2, (first, second))
        self.assertLess(second - first, 10, (first, second))


class MetricsFormatTest(MetricsCase):

    async def test_metrics_is_prometheus_text_with_every_required_metric_typed(self):
        r = raw_request(self.server, ('GET', '/metrics'))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header('Content-Type'), METRICS_CONTENT_TYPE)
        s = Scrape(r.body.decode('utf-8'))
        for name, kind in REQUIRED_METRICS.items():
            self.assertEqual(s.types.get(name), kind, 'TYPE of %s in:\n%s' % (name, s.text))
        for name in REQUIRED_METRICS:
            if name in ('duet_connections_closed_total', 'duet_errors_total'):
                continue  # labelled; may have no lines yet
            self.assertIn((name, ()), s.samples, '%s has no unlabelled sample:\n%s' % (name, s.text))
        for (name, _), _v in s.samples.items():
            self.assertTrue(name.startswith('duet_'), 'metric %s is not named duet_*' % name)

    async def test_a_fresh_server_reports_zero_activity(self):
        s = scrape(self.server)
        for name in ['duet_connections_open', 'duet_connections_accepted_total',
                     'duet_messages_received_total', 'duet_pairing_pairs_active',
                     'duet_pairing_relayed_sdp_total', 'duet_pairing_relayed_ice_total']:
            self.assertEqual(s.value(name), 0, name)
        for reason in CLOSE_REASONS:
            self.assertEqual(s.value('duet_connections_closed_total', reason=reason), 0, reason)
        self.assertEqual({v for (n, _), v in s.samples.items() if n == 'duet_errors_total'} - {0.0},
                         set(), 'errors counted on a fresh server:\n%s' % s.text)
        self.assertGreater(s.value('duet_process_resident_memory_bytes'), 1024 * 1024)
        self.assertLess(s.value('duet_process_resident_memory_bytes'), 4 * 1024 ** 3)
        self.assertGreaterEqual(s.value('duet_uptime_seconds'), 0)
        self.assertLess(s.value('duet_uptime_seconds'), 60)

    async def test_closed_connections_use_only_the_documented_reasons(self):
        a, b = await self.pair()
        await self.hang_up(a, b)
        s = await wait_for_metric(self.server, 'duet_connections_open', 0)
        reasons = s.label_values('duet_connections_closed_total', 'reason')
        self.assertLessEqual(reasons, CLOSE_REASONS, s.text)
        for (n, lb) in s.samples:
            if n == 'duet_connections_closed_total':
                self.assertEqual([k for k, _ in lb], ['reason'], s.text)
            if n == 'duet_errors_total':
                self.assertEqual([k for k, _ in lb], ['code'], s.text)

    async def test_counters_never_decrease_between_two_scrapes(self):
        before = scrape(self.server)
        a, b = await self.pair()
        await b.send_json({'ice': {'candidate': 'c'}, 'remote': a.name})
        self.assertEqual(await a.recv_json(), {'ice': {'candidate': 'c'}, 'remote': a.name})
        await a.send_text('not json')
        self.assertError(await a.recv_json(), 'malformed')
        await self.hang_up(a, b)
        middle = await wait_for_metric(self.server, 'duet_connections_open', 0)
        assert_counters_did_not_decrease(self, before, middle)
        after = scrape(self.server)
        assert_counters_did_not_decrease(self, middle, after)
        self.assertGreater(after.value('duet_connections_accepted_total'),
                           before.value('duet_connections_accepted_total'))
        self.assertGreater(after.value('duet_uptime_seconds'), before.value('duet_uptime_seconds'))


class MetricsCountTest(MetricsCase):

    async def test_three_malformed_messages_count_three_malformed_errors(self):
        c = await self.connect('bad')
        for text in ['not json', '{"open":', '[1]']:
            await c.send_text(text)
            self.assertError(await c.recv_json(), 'malformed')
        s = scrape(self.server)
        self.assertEqual(s.value('duet_errors_total', code='malformed'), 3, s.text)
        self.assertEqual(s.value('duet_connections_accepted_total'), 1, s.text)
        self.assertEqual(s.value('duet_connections_open'), 1, s.text)
        # One line per code seen so far, and only those.
        codes = {dict(lb)['code']: v for (n, lb), v in s.samples.items() if n == 'duet_errors_total'}
        self.assertEqual({k for k, v in codes.items() if v}, {'malformed'}, s.text)
        await c.close()
        await self.assert_server_still_pairs()

    async def test_each_error_code_gets_its_own_line(self):
        c = await self.connect('bad')
        await c.send_text('{"foo":1}')
        self.assertError(await c.recv_json(), 'unknown-type')
        for _ in range(2):
            await c.send_json({'sdp': {'type': 'offer'}, 'remote': 'nobody'})
            self.assertError(await c.recv_json(), 'not-paired')
        s = scrape(self.server)
        self.assertEqual(s.value('duet_errors_total', code='unknown-type'), 1, s.text)
        self.assertEqual(s.value('duet_errors_total', code='not-paired'), 2, s.text)
        self.assertEqual(s.value('duet_errors_total', code='malformed'), 0, s.text)
        self.assertEqual(s.value('duet_messages_received_total'), 3, s.text)
        self.assertEqual(s.value('duet_pairing_relayed_sdp_total'), 0, s.text)

    async def test_a_pair_relaying_two_sdp_and_three_ice_is_counted_exactly(self):
        a, b = await self.pair()
        for i in range(2):
            m = {'sdp': {'type': 'offer' if i == 0 else 'answer', 'sdp': 'v=0 %d' % i},
                 'remote': (a if i == 0 else b).name}
            await (b if i == 0 else a).send_json(m)
            self.assertEqual(await (a if i == 0 else b).recv_json(), m)
        for i in range(3):
            m = {'ice': {'candidate': 'candidate:%d' % i}, 'remote': a.name}
            await b.send_json(m)
            self.assertEqual(await a.recv_json(), m)
        s = scrape(self.server)
        self.assertEqual(s.value('duet_pairing_relayed_sdp_total'), 2, s.text)
        self.assertEqual(s.value('duet_pairing_relayed_ice_total'), 3, s.text)
        self.assertEqual(s.value('duet_pairing_pairs_active'), 1, s.text)
        self.assertEqual(s.value('duet_connections_open'), 2, s.text)
        self.assertEqual(s.value('duet_connections_accepted_total'), 2, s.text)
        # 2 opens + 2 sdp + 3 ice.
        self.assertEqual(s.value('duet_messages_received_total'), 7, s.text)
        self.assertEqual(s.value('duet_connections_closed_total', reason='client'), 0, s.text)

        # a hangs up: b is told, the pair is gone, the close counted as the client's.
        await a.close()
        self.assertEqual(await b.recv_json(), {'close': 1})
        s = await wait_for_metric(self.server, 'duet_pairing_pairs_active', 0)
        s = await wait_for_metric(self.server, 'duet_connections_closed_total', 1, reason='client')
        self.assertEqual(s.value('duet_connections_open'), 1, s.text)
        self.assertEqual(s.value('duet_pairing_relayed_sdp_total'), 2, s.text)
        self.assertEqual(s.value('duet_pairing_relayed_ice_total'), 3, s.text)
        for reason in CLOSE_REASONS - {'client'}:
            self.assertEqual(s.value('duet_connections_closed_total', reason=reason), 0,
                             '%s: %s' % (reason, s.text))
        await b.close()
        s = await wait_for_metric(self.server, 'duet_connections_closed_total', 2, reason='client')
        self.assertEqual(s.value('duet_connections_open'), 0, s.text)
        await self.assert_server_still_pairs()

    async def test_a_takeover_is_counted_as_a_takeover_close(self):
        me, peer = unique_id('me'), unique_id('peer')
        old = await self.connect('old')
        await old.open(me, peer)
        await old.expect_nothing(0.15)
        new = await self.connect('new')
        await new.open(me, peer)
        code, seen = await old.expect_close(code=4001)
        s = await wait_for_metric(self.server, 'duet_connections_closed_total', 1, reason='takeover')
        self.assertEqual(s.value('duet_connections_closed_total', reason='client'), 0, s.text)
        self.assertEqual(s.value('duet_connections_open'), 1, s.text)
        self.assertEqual(await new.ping_pong(), {'pong': 1})
        await self.assert_server_still_pairs()


class OpenTimeoutMetricsTest(MetricsCase):
    server_args = ['--open-timeout', '0.5']

    async def test_an_open_timeout_is_counted_as_a_timeout_close_and_an_error(self):
        c = await self.connect('idle')
        await c.expect_close(code=4408)
        s = await wait_for_metric(self.server, 'duet_connections_closed_total', 1, reason='timeout')
        self.assertEqual(s.value('duet_errors_total', code='open-timeout'), 1, s.text)
        self.assertEqual(s.value('duet_connections_open'), 0, s.text)


# ---------------------------------------------------------------------------

class SwitchesTest(MetricsCase):
    server_args = None

    async def test_no_health_makes_healthz_a_404_and_keeps_metrics(self):
        srv = self.start_server(['--no-health'])
        r = raw_request(srv, ('GET', '/healthz'))
        self.assertEqual(r.status, 404, r.raw_head)
        scrape(srv)
        await self.assert_server_still_pairs(server=srv)

    async def test_no_metrics_makes_metrics_a_404_and_keeps_healthz(self):
        srv = self.start_server(['--no-metrics'])
        r = raw_request(srv, ('GET', '/metrics'))
        self.assertEqual(r.status, 404, r.raw_head)
        self.assertNotIn(b'duet_', r.body)
        self.assertEqual(healthz(srv)['status'], 'ok')
        await self.assert_server_still_pairs(server=srv)


class AdminListenTest(MetricsCase):

    async def asyncSetUp(self):
        await DuetTestCase.asyncSetUp(self)
        self.admin = ('127.0.0.1', free_port())
        self.server = self.start_server(['--admin-listen', '%s:%d' % self.admin])

    async def test_admin_listen_serves_healthz_and_metrics_over_plain_http(self):
        obj = healthz(self.server, admin=self.admin)
        self.assertEqual(obj['status'], 'ok', obj)
        self.assertEqual(obj['connections'], 0, obj)
        s = scrape(self.server, admin=self.admin)
        for name, kind in REQUIRED_METRICS.items():
            self.assertEqual(s.types.get(name), kind, name)
        # The numbers are the main port's: a pair made there shows up here.
        a, b = await self.pair()
        self.assertEqual(healthz(self.server, admin=self.admin)['connections'], 2)
        s = scrape(self.server, admin=self.admin)
        self.assertEqual(s.value('duet_pairing_pairs_active'), 1, s.text)
        self.assertEqual(s.value('duet_connections_accepted_total'), 2, s.text)

    async def test_admin_listen_takes_healthz_and_metrics_off_the_main_port(self):
        for path in ['/healthz', '/metrics']:
            r = raw_request(self.server, ('GET', path))
            self.assertEqual(r.status, 404, '%s on the TLS port: %r' % (path, r.raw_head))
            self.assertNotIn(b'duet_', r.body)
        await self.assert_server_still_pairs()

    async def test_the_admin_port_serves_nothing_else(self):
        for path in ['/', '/index.html', '/healthz/', '/metrics/x', '/favicon.ico']:
            status, _, body = plain_get(self.admin[0], self.admin[1], path)
            self.assertEqual(status, 404, 'GET %s on the admin port' % path)
        # And speaks no TLS: a plain request is what it answers.
        with socket.create_connection(self.admin, timeout=5) as s:
            s.sendall(b'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
            s.settimeout(5)
            self.assertTrue(s.recv(64).startswith(b'HTTP/1.1 200'))
        self.assertEqual(healthz(self.server, admin=self.admin)['status'], 'ok')

    async def test_the_admin_port_does_not_accept_websockets(self):
        import websockets
        try:
            ws = await asyncio.wait_for(websockets.connect(
                'ws://%s:%d/' % self.admin, open_timeout=3, ping_interval=None), 5)
        except asyncio.TimeoutError:
            self.fail('the admin port neither accepted nor refused a WebSocket upgrade in 5 s')
        except (OSError, websockets.exceptions.WebSocketException):
            pass  # refused: what the contract wants
        else:
            await ws.send('{"ping":1}')
            try:
                answer = await asyncio.wait_for(ws.recv(), 2)
            except Exception as e:
                answer = repr(e)
            await ws.close()
            self.fail('the admin port (plain HTTP, only /healthz and /metrics) accepted a '
                      'WebSocket upgrade at / and answered {"ping":1} with %r' % (answer,))
        self.assertEqual(healthz(self.server, admin=self.admin)['connections'], 0)
        await self.assert_server_still_pairs()


class AdminListenOptionTest(unittest.TestCase):

    def test_a_bad_admin_listen_value_exits_with_code_2(self):
        tmp = tempfile.mkdtemp(prefix='duet-admin-')
        self.addCleanup(shutil.rmtree, tmp, True)
        for value in ['nonsense', '127.0.0.1:70000', '127.0.0.1:', ':abc']:
            proc = run_duetd(['--address', '127.0.0.1', '--port', '0', '--state-dir', tmp,
                              '--web-root', tmp, '--admin-listen', value], timeout=30)
            self.assertEqual(proc.returncode, 2, '--admin-listen %r: exit %s, stderr %r'
                             % (value, proc.returncode, proc.stderr))
            self.assertIn('admin-listen', proc.stderr, value)


if __name__ == '__main__':
    unittest.main()
