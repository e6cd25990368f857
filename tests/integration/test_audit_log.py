"""The audit-log plugin against a real duetd: the records of a call, what
they must never contain, hostile ids, log rotation with SIGHUP, files that
cannot be written, stdout, and refused messages.

Each test starts its own duetd (the audit path is a start-up option) with a
50 ms flush interval, then polls the file.

Run: DUETD=build/core/duetd DUET_TEST_PLUGIN_DIR=build/tests \
     /usr/bin/python3 tests/integration/test_audit_log.py
Until audit-log is a bundled plugin, the module is found next to the tests'
build folder (build/plugins/audit-log/duet-audit-log.so) or at
$DUET_AUDIT_LOG_PLUGIN.
"""

import asyncio
import datetime
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import unittest
import uuid

from duet_harness import WAIT, DuetTestCase, Server, raw_request, run_duetd, ssl_context, stop_checked, unique_id

TIME_RE = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')

_plugin_args = None


def audit_plugin_args():
    """The arguments that load audit-log: none once it is bundled."""
    global _plugin_args
    if _plugin_args is not None:
        return _plugin_args
    explicit = os.environ.get('DUET_AUDIT_LOG_PLUGIN')
    if explicit:
        _plugin_args = ['--plugin', os.path.abspath(explicit)]
        return _plugin_args
    listing = run_duetd(['--list-plugins'])
    if re.search(r'^audit-log ', listing.stdout, re.M):
        _plugin_args = []
        return _plugin_args
    test_dir = os.environ.get('DUET_TEST_PLUGIN_DIR', '')
    candidate = os.path.abspath(os.path.join(test_dir, '..', 'plugins', 'audit-log',
                                             'duet-audit-log.so'))
    if test_dir and os.path.isfile(candidate):
        _plugin_args = ['--plugin', candidate]
        return _plugin_args
    raise AssertionError('audit-log is not bundled in this duetd and its module was not found '
                         'at %s: build it, or set DUET_AUDIT_LOG_PLUGIN to its path' % candidate)


def parse_records(data, complete=True):
    """The records in data (bytes of a JSON Lines file), one per line.

    With complete=False a last line still being written is left out (the
    file is read while duetd may be flushing)."""
    text = data.decode('utf-8')  # strict: the file must be valid UTF-8
    lines = text.split('\n')  # only \n ends a line; U+2028 does not
    last = lines.pop()
    if last:
        if complete:
            raise AssertionError('the audit log does not end with a newline: %r' % text[-300:])
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError as e:
            raise AssertionError('audit line is not JSON (%s): %r' % (e, line)) from None
        if not isinstance(record, dict):
            raise AssertionError('audit line is not an object: %r' % line)
        records.append(record)
    return records


def read_file(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except FileNotFoundError:
        return b''


def events(records):
    return [r['event'] for r in records]


class AuditLogCase(DuetTestCase):
    """Starts one duetd per test with the audit log at a given path."""

    async def asyncSetUp(self):
        await super().asyncSetUp()
        self._server = None
        self.folder = tempfile.mkdtemp(prefix='duet-audit-')
        self.addCleanup(shutil.rmtree, self.folder, True)
        self.audit_path = os.path.join(self.folder, 'audit.log')

    def current_server(self):
        return self._server

    def start_server(self, audit_path=None, extra=()):
        args = audit_plugin_args() + [
            '--plugin-opt', 'audit-log.path=' + (audit_path or self.audit_path),
            '--plugin-opt', 'audit-log.flush-ms=50'] + list(extra)
        srv = Server(extra_args=args)
        srv.__enter__()
        self._server = srv
        self.addCleanup(stop_checked, srv)
        return srv

    def stop_server(self):
        rc = self._server.stop()
        self.assertEqual(rc, 0, 'duetd exit code on SIGTERM; stderr:\n' + self._server.log())

    async def wait_for_records(self, count, read=None, timeout=WAIT):
        """Polls until at least count records are there; returns them all."""
        read = read or (lambda: read_file(self.audit_path))
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            records = parse_records(read(), complete=False)
            if len(records) >= count:
                return records
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError('expected %d audit records within %.1f s, got %d: %r\nstderr:\n%s'
                                     % (count, timeout, len(records), records, self._server.log()))
            await asyncio.sleep(0.05)

    async def settled_records(self, count, read=None):
        """Exactly count records, checked again after a few more flushes."""
        await self.wait_for_records(count, read)
        await asyncio.sleep(0.3)
        records = parse_records((read or (lambda: read_file(self.audit_path)))())
        self.assertEqual(len(records), count, 'audit records: %r' % records)
        return records

    async def full_call(self, sdp_text='v=0\r\n', candidate='candidate:1 1 UDP 1 192.0.2.1 9 typ host',
                        local=None, remote=None):
        """Pairs two clients, relays two sdp and two ice messages, hangs up
        (the waiting one closes first) and closes the other. Returns the ids."""
        a, b = await self.pair(local, remote)
        offer = {'sdp': {'type': 'offer', 'sdp': sdp_text}, 'remote': a.name}
        answer = {'sdp': {'type': 'answer', 'sdp': sdp_text}, 'remote': b.name}
        ice_b = {'ice': {'candidate': candidate, 'sdpMid': '0', 'sdpMLineIndex': 0}, 'remote': a.name}
        ice_a = {'ice': {'candidate': candidate, 'sdpMid': '0', 'sdpMLineIndex': 0}, 'remote': b.name}
        await b.send_json(offer)
        self.assertEqual(await a.recv_json(), offer)
        await a.send_json(answer)
        self.assertEqual(await b.recv_json(), answer)
        await b.send_json(ice_b)
        self.assertEqual(await a.recv_json(), ice_b)
        await a.send_json(ice_a)
        self.assertEqual(await b.recv_json(), ice_a)
        await a.close()
        self.assertEqual(await b.recv_json(), {'close': 1})
        await b.close()
        return a.name, b.name

    def metric(self, srv, name):
        """The value of duet_NAME on /metrics."""
        response = raw_request(srv, ('GET', '/metrics'))
        self.assertEqual(response.status, 200)
        m = re.search(r'^duet_%s (\d+)$' % name, response.body.decode(), re.M)
        self.assertIsNotNone(m, 'metric %s missing from /metrics:\n%s' % (name, response.body.decode()))
        return int(m.group(1))

    async def wait_for_metric(self, srv, name, at_least, timeout=WAIT):
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = self.metric(srv, name)
            if value >= at_least:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError('metric %s stayed at %d, expected at least %d'
                                     % (name, value, at_least))
            await asyncio.sleep(0.05)

    def assertTime(self, record):
        self.assertRegex(record.get('time', ''), TIME_RE, 'time of %r' % record)
        when = datetime.datetime.strptime(record['time'], '%Y-%m-%dT%H:%M:%S.%fZ')
        now = datetime.datetime.utcnow()
        self.assertLess(abs((now - when).total_seconds()), 60, 'time of %r is not now' % record)

    def assertCallRecords(self, records, waiting_id, newcomer_id, sdp=2, ice=2):
        """The eight records of one full_call, in order."""
        self.assertEqual(events(records), ['accepted', 'open', 'accepted', 'open', 'paired',
                                           'unpaired', 'closed', 'closed'], records)
        for r in records:
            self.assertTime(r)
            self.assertIsInstance(r['conn'], int)
        waiting, newcomer = records[0]['conn'], records[2]['conn']
        self.assertNotEqual(waiting, newcomer)
        for accepted in (records[0], records[2]):
            self.assertEqual(accepted['remote_addr'], '127.0.0.1')
            self.assertIsInstance(accepted['remote_port'], int)
            self.assertGreater(accepted['remote_port'], 0)
            self.assertIn('websockets', accepted['user_agent'])
            self.assertRegex(accepted['tls_version'], r'^TLSv1\.[23]$')
        self.assertEqual(records[1], dict(records[1], conn=waiting, local=waiting_id, remote=newcomer_id))
        self.assertEqual(set(records[1]), {'time', 'event', 'conn', 'local', 'remote'})
        self.assertEqual(records[3], dict(records[3], conn=newcomer, local=newcomer_id, remote=waiting_id))
        paired = records[4]
        self.assertEqual({k: v for k, v in paired.items() if k != 'time'},
                         {'event': 'paired', 'conn': newcomer, 'offerer': newcomer_id,
                          'answerer': waiting_id, 'offerer_conn': newcomer, 'answerer_conn': waiting})
        unpaired = records[5]
        self.assertIsInstance(unpaired.get('duration_ms'), int)
        self.assertGreaterEqual(unpaired['duration_ms'], 0)
        self.assertLess(unpaired['duration_ms'], 60000)
        self.assertEqual({k: v for k, v in unpaired.items() if k not in ('time', 'duration_ms')},
                         {'event': 'unpaired', 'conn': waiting, 'local': waiting_id,
                          # The test's clients close with 1000: a hang-up, not a lost link.
                          'remote': newcomer_id, 'reason': 'hangup', 'sdp': sdp, 'ice': ice,
                          'partner_conn': newcomer})
        self.assertEqual({k: v for k, v in records[6].items() if k != 'time'},
                         {'event': 'closed', 'conn': waiting, 'reason': 'client'})
        self.assertEqual({k: v for k, v in records[7].items() if k != 'time'},
                         {'event': 'closed', 'conn': newcomer, 'reason': 'client'})
        times = [r['time'] for r in records]
        self.assertEqual(times, sorted(times), 'records are in time order')


class CallRecordsTest(AuditLogCase):

    async def test_a_full_call_produces_exactly_the_expected_records_after_a_flush_and_after_sigterm(self):
        self.start_server()
        waiting_id, newcomer_id = await self.full_call()
        records = await self.settled_records(8)
        self.assertCallRecords(records, waiting_id, newcomer_id)
        self.stop_server()
        after_exit = parse_records(read_file(self.audit_path))
        self.assertEqual(after_exit, records, 'SIGTERM adds nothing after the connections closed')

    async def test_records_still_buffered_at_shutdown_are_written_on_sigterm(self):
        self.start_server(extra=['--plugin-opt', 'audit-log.flush-ms=60000'])
        a = await self.connect('a')
        await a.open(unique_id('a'), unique_id('b'))
        await a.synced()  # the open is handled (and its record buffered) before SIGTERM
        await a.expect_nothing(0.2)
        self.assertEqual(read_file(self.audit_path), b'', 'nothing is written before a flush')
        self.stop_server()
        records = parse_records(read_file(self.audit_path))
        self.assertEqual(events(records), ['accepted', 'open', 'closed'], records)
        self.assertEqual(records[2]['reason'], 'shutdown')

    async def test_no_sdp_or_ice_content_ever_reaches_the_file(self):
        self.start_server()
        marker = 'marker-' + uuid.uuid4().hex
        await self.full_call(sdp_text='v=0\r\na=fingerprint:sha-256 %s\r\n' % marker,
                             candidate='candidate:%s 1 udp 2122260223 192.0.2.77 54321 typ host' % marker)
        records = await self.settled_records(8)
        self.stop_server()
        data = read_file(self.audit_path)
        self.assertNotIn(marker.encode(), data)
        self.assertNotIn(b'192.0.2.77', data)
        self.assertNotIn(b'fingerprint', data)
        self.assertNotIn(b'candidate', data)
        self.assertEqual((records[5]['sdp'], records[5]['ice']), (2, 2))

    async def test_ids_with_quotes_backslashes_and_line_separators_cannot_break_or_forge_a_line(self):
        self.start_server()
        forged = '{"time":"2000-01-01T00:00:00.000Z","event":"forged","conn":1}'
        waiting_id = 'a"q"\\b\u2028c\u2029d}%s' % forged
        newcomer_id = 'b\\\\"\u2028\u2028%s{' % forged
        await self.full_call(local=waiting_id, remote=newcomer_id)
        await self.settled_records(8)
        self.stop_server()
        data = read_file(self.audit_path)
        self.assertEqual(data.count(b'\n'), 8, 'exactly one line per record')
        self.assertNotIn('\u2028'.encode(), data, 'U+2028 is escaped: some tools break lines there')
        self.assertNotIn('\u2029'.encode(), data)
        records = parse_records(data)
        self.assertNotIn('forged', events(records))
        self.assertCallRecords(records, waiting_id, newcomer_id)

    async def test_ids_with_newlines_and_control_characters_cannot_break_or_forge_a_line(self):
        # The pairing plugin may refuse such ids (it does today) or take
        # them: either way every record stays one line of JSON.
        self.start_server()
        forged = '{"time":"2000-01-01T00:00:00.000Z","event":"forged","conn":1}'
        hostile = ['a\n%s\r\n' % forged, 'b\x00\x01\x08\t\x0b\x0c\x1b[2J\x1f\x7f\u0085\n\n']
        a = await self.connect('a')
        b = await self.connect('b')
        await a.open(hostile[0], hostile[1])
        await b.open(hostile[1], hostile[0])
        replies = [await a.recv_json(), await b.recv_json()]
        await a.close()
        await b.close()
        self.stop_server()
        data = read_file(self.audit_path)
        records = parse_records(data)
        self.assertEqual(data.count(b'\n'), len(records), 'exactly one line per record')
        self.assertNotIn('forged', events(records))
        self.assertEqual(events(records).count('accepted'), 2, records)
        self.assertEqual(events(records).count('closed'), 2, records)
        for r in records:
            if r['event'] == 'open':
                self.assertIn(r['local'], hostile)
                self.assertIn(r['remote'], hostile)
            if r['event'] == 'rejected':
                self.assertEqual(r['code'], 'bad-request')
        refused = sum(1 for reply in replies if 'error' in reply)
        self.assertEqual(events(records).count('rejected'), refused, (replies, records))
        self.assertEqual(events(records).count('open'), 2 - refused, (replies, records))

    async def test_a_user_agent_that_is_not_utf8_is_recorded_as_valid_json(self):
        srv = self.start_server()
        # A raw upgrade request: a WebSocket library would refuse to send these bytes.
        request = (b'GET / HTTP/1.1\r\nHost: localhost:%d\r\nUpgrade: websocket\r\n'
                   b'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
                   b'Sec-WebSocket-Version: 13\r\n'
                   b'User-Agent: bad \xff\xfe\xc0\xaf "quoted" \\ \xe2\x80\xa8 \xc2\x85 end\r\n\r\n' % srv.port)
        with socket.create_connection((srv.host, srv.port), timeout=5) as raw:
            with ssl_context(srv.ca_file, alpn=None).wrap_socket(raw, server_hostname='localhost') as tls:
                tls.sendall(request)
                self.assertIn(b' 101 ', tls.recv(4096).split(b'\r\n')[0] + b' ')
        records = await self.wait_for_records(2)
        self.assertEqual(events(records)[:2], ['accepted', 'closed'])
        agent = records[0]['user_agent']
        self.assertTrue(agent.startswith('bad \ufffd'), agent)
        self.assertIn('"quoted" \\ \u2028 \u0085 end', agent)
        data = read_file(self.audit_path)
        self.assertNotIn('\u2028'.encode(), data, 'U+2028 is escaped: some tools break lines there')
        self.assertNotIn('\u0085'.encode(), data, 'so is NEL')


class RotationTest(AuditLogCase):

    async def test_sighup_after_renaming_the_file_starts_a_new_file_and_loses_no_record(self):
        srv = self.start_server()
        first = await self.full_call()
        await self.wait_for_records(8)
        rotated = self.audit_path + '.1'
        os.rename(self.audit_path, rotated)
        # Records made after the rename but before SIGHUP still belong to the
        # renamed file (duetd writes to what it has open).
        c = await self.connect('c')
        self.assertEqual(await c.ping_pong(), {'pong': 1})
        os.kill(srv.pid, signal.SIGHUP)
        srv.wait_for_log(r'reopened the audit log')
        c_id = unique_id('c')
        await c.open(c_id, unique_id('nobody'))
        await c.synced()
        await c.expect_nothing(0.1)
        await c.close()
        second = await self.full_call()
        await self.wait_for_records(10)
        self.stop_server()

        old = parse_records(read_file(rotated))
        new = parse_records(read_file(self.audit_path))
        self.assertCallRecords(old[:8], *first)
        self.assertEqual(events(old[8:]), ['accepted'], old[8:])
        self.assertEqual(events(new[:2]), ['open', 'closed'], new)
        self.assertEqual(new[0]['conn'], old[8]['conn'])
        self.assertEqual(new[0]['local'], c_id)
        self.assertCallRecords(new[2:], *second)
        self.assertEqual(len(old) + len(new), 19)
        self.assertEqual(oct(os.stat(self.audit_path).st_mode & 0o777), oct(0o640 & ~current_umask()))


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


class UnwritableFileTest(AuditLogCase):

    async def test_a_full_disk_leaves_the_server_serving_and_says_records_are_dropped(self):
        if not os.path.exists('/dev/full'):
            raise unittest.SkipTest('no /dev/full here')
        srv = self.start_server('/dev/full')
        await self.assert_server_still_pairs()
        srv.wait_for_log(r'warn: audit-log: cannot write the audit log /dev/full: No space left on '
                         r'device; dropped \d+ audit record')
        await self.assert_server_still_pairs()
        await self.wait_for_metric(srv, 'audit_records_dropped_total', 16)
        self.assertEqual(self.metric(srv, 'audit_records_written_total'), 0)
        # Rate-limited: one warning however many records and flushes failed.
        self.assertEqual(len(re.findall(r'cannot write the audit log', srv.log())), 1, srv.log())

    async def test_a_path_in_a_missing_folder_leaves_the_server_serving_and_is_retried(self):
        folder = os.path.join(self.folder, 'not-yet')
        path = os.path.join(folder, 'audit.log')
        srv = self.start_server(path)
        srv.wait_for_log(r'cannot open the audit log %s: No such file or directory' % re.escape(path))
        await self.assert_server_still_pairs()
        # Every record of that call (two accepted, two open, paired,
        # unpaired, two closed) is lost before the folder exists.
        await self.wait_for_metric(srv, 'audit_records_dropped_total', 8)
        os.mkdir(folder)
        c = await self.connect('c')
        await c.close()
        records = await self.wait_for_records(2, read=lambda: read_file(path))
        self.assertEqual(events(records), ['accepted', 'closed'], 'records made before the folder '
                         'existed are dropped; later ones are written')

    async def test_a_path_in_a_read_only_folder_leaves_the_server_serving(self):
        if os.geteuid() == 0:
            # Permission bits do not stop root; sysfs refuses new files to anyone.
            path = '/sys/duet-audit-%s.log' % uuid.uuid4().hex
        else:
            folder = os.path.join(self.folder, 'read-only')
            os.mkdir(folder, 0o500)
            self.addCleanup(os.chmod, folder, 0o700)
            path = os.path.join(folder, 'audit.log')
        srv = self.start_server(path)
        srv.wait_for_log(r'cannot open the audit log %s: Permission denied' % re.escape(path))
        await self.assert_server_still_pairs()
        await self.wait_for_metric(srv, 'audit_records_dropped_total', 8)
        self.assertFalse(os.path.exists(path))


class SlowReaderTest(AuditLogCase):

    async def test_a_reader_that_stops_reading_never_stalls_the_server_and_no_line_is_torn(self):
        fifo = os.path.join(self.folder, 'audit.fifo')
        os.mkfifo(fifo)
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, reader)
        srv = self.start_server(fifo, extra=['--plugin-opt', 'audit-log.buffer-bytes=4096',
                                             '--max-messages-per-second', '100000'])
        # Far more refusals than the pipe (64 KiB on Linux by default) and the
        # buffer hold: each is a "rejected" record of about 100 bytes.
        c = await self.connect('c')
        for _ in range(1500):
            await c.send_text('{"no-such-type":1}')
        for _ in range(1500):
            self.assertError(await c.recv_json(), 'unknown-type')
        await self.assert_server_still_pairs()
        srv.wait_for_log(r'the audit log buffer \(4096 bytes\) is full')
        self.assertGreater(self.metric(srv, 'audit_records_dropped_total'), 0)

        def drain():
            data = b''
            while True:
                try:
                    chunk = os.read(reader, 65536)
                except BlockingIOError:
                    return data
                if not chunk:
                    return data
                data += chunk

        received = drain()
        marker = unique_id('after')
        late = await self.connect('late')
        await late.open(marker, unique_id('nobody'))
        await late.synced()
        await late.expect_nothing(0.1)
        deadline = asyncio.get_running_loop().time() + WAIT
        while marker.encode() not in received:
            self.assertLess(asyncio.get_running_loop().time(), deadline,
                            'no records after the reader caught up; stderr:\n' + srv.log())
            await asyncio.sleep(0.05)
            received += drain()
        records = parse_records(received, complete=False)  # every line parses: none was torn
        self.assertEqual(received.count(b'\n'), len(records))
        self.assertGreater(events(records).count('rejected'), 300)
        self.assertEqual(records[-1]['local'], marker)


class StdoutTest(AuditLogCase):

    async def test_a_dash_writes_the_records_to_stdout(self):
        srv = self.start_server('-')
        first = await self.full_call()
        read = lambda: srv.stdout().encode('utf-8')  # noqa: E731
        records = await self.settled_records(8, read=read)
        self.assertCallRecords(records, *first)
        self.stop_server()
        self.assertEqual(parse_records(read()), records)


class RejectedTest(AuditLogCase):

    async def test_a_refused_message_produces_a_rejected_record_with_its_code(self):
        self.start_server()
        c = await self.connect('c')
        await c.send_json({'no-such-type': 1})
        self.assertError(await c.recv_json(), 'unknown-type')
        await c.send_text('{not json')
        self.assertError(await c.recv_json(), 'malformed')
        records = await self.wait_for_records(3)
        self.assertEqual(events(records), ['accepted', 'rejected', 'rejected'])
        conn = records[0]['conn']
        self.assertEqual({k: v for k, v in records[1].items() if k != 'time'},
                         {'event': 'rejected', 'conn': conn, 'code': 'unknown-type'})
        self.assertEqual(records[2]['code'], 'malformed')
        self.assertEqual(records[2]['conn'], conn)
        # The refused message itself is never copied into the log.
        self.assertNotIn(b'no-such-type', read_file(self.audit_path))


if __name__ == '__main__':
    unittest.main(verbosity=2)
