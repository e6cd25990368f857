"""Lines and rings (issue 23, the WebSocket part) against a real duetd over
real TLS: making a line, devices joining with a code, renaming, replacing
the link, removing a device; a ring that rings every device, accept,
decline, no answer, cancel, busy; the abuse limits; bad input; the store
surviving a restart; tokens with --auth-secret; lines turned off.

Every wait is for a message or a log line, with generous timeouts: a busy
machine makes the test slower, never wrong.

Run: DUETD=build/core/duetd /usr/bin/python3 tests/integration/test_ring.py
"""

import asyncio
import os
import re
import shutil
import tempfile
import unittest

from duet_harness import DuetTestCase, Server, eventually, run_duetd, stop_checked
from test_metrics import scrape
from test_resume import drop

T = 15.0  # seconds to wait for any one message
LINE_ID = re.compile(r'^([a-z]+-){4}[0-9a-hjkmnp-tv-z]{7}$')


def metric(srv, name):
    return scrape(srv).value('duet_' + name)


class RingClient:
    """What the tests do with lines, on top of DuetTestCase.connect."""

    async def recv(self, client, kind):
        """The next message, which must be of kind; returns its body."""
        got = await client.recv_json(T)
        self.assertEqual(list(got), [kind], '%s: expected %s, got %r' % (client.name, kind, got))
        return got[kind]

    async def refused(self, client, message, code):
        await client.send_json(message)
        return self.assertError(await client.recv_json(T), code, 'answer to %r' % (message,))

    async def make_line(self, name='Alice', label='laptop', extra=None):
        device = await self.connect('first device')
        body = {'name': name, 'label': label}
        body.update(extra or {})
        await device.send_json({'line-create': body})
        cred = await self.recv(device, 'line-credentials')
        state = await self.recv(device, 'line')
        return device, cred, state

    async def attach(self, cred, name='device'):
        device = await self.connect(name)
        await device.send_json({'line-attach': {'device': cred['device'], 'secret': cred['secret']}})
        return device, await self.recv(device, 'line')

    async def join(self, member, label='phone'):
        """A new device joins member's line with an invite code member shows."""
        await member.send_json({'line-invite': {}})
        invite = await self.recv(member, 'line-invite')
        device = await self.connect(label)
        await device.send_json({'line-join': {'code': invite['code'], 'label': label}})
        cred = await self.recv(device, 'line-credentials')
        state = await self.recv(device, 'line')
        self.assertEqual(len((await self.recv(member, 'line'))['devices']), len(state['devices']))
        return device, cred, state, invite['code']

    async def two_devices(self, name='Alice'):
        d1, cred1, state = await self.make_line(name)
        d2, cred2, _, _ = await self.join(d1)
        return d1, d2, state['line']

    async def ring(self, line, name='Bob'):
        caller = await self.connect('caller ' + name)
        await caller.send_json({'ring': {'line': line, 'name': name}})
        return caller, await self.recv(caller, 'ringing')

    async def incoming(self, devices, ring, caller='Bob'):
        for d in devices:
            got = await self.recv(d, 'incoming')
            self.assertEqual((got['ring'], got['caller']), (ring, caller))
            self.assertIsInstance(got['at'], int)


class LinesTest(RingClient, DuetTestCase):
    """One duetd for the class, with limits high enough for every test."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='duet-ring-')
        cls.audit = os.path.join(cls.tmp, 'audit.jsonl')
        cls.server = Server(extra_args=['--ring-db', os.path.join(cls.tmp, 'ring.db'), '--ring-rate', '1000',
                                        '--ring-line-rate', '1000', '--ring-create-rate', '1000',
                                        '--audit-log', cls.audit, '--plugin-opt', 'audit-log.flush-ms=20'])
        cls.server.__enter__()

    @classmethod
    def tearDownClass(cls):
        stop_checked(cls.server)
        shutil.rmtree(cls.tmp, True)

    async def test_a_new_line_has_a_readable_id_and_its_device_a_secret(self):
        device, cred, state = await self.make_line('Alice', 'laptop')
        self.assertRegex(state['line'], LINE_ID)
        self.assertRegex(cred['device'], r'^[0-9a-f]{16}$')
        self.assertRegex(cred['secret'], r'^[0-9a-f]{32}$')
        self.assertEqual(state['name'], 'Alice')
        self.assertEqual(state['device'], cred['device'])
        self.assertEqual(state['devices'], [{'device': cred['device'], 'label': 'laptop'}])
        self.assertEqual(state['missed'], [])
        _, _, other = await self.make_line('Alice')
        self.assertNotEqual(other['line'], state['line'])
        # The secret goes to the device alone: neither the log nor the audit
        # log has it. A refusal sent after it is in the audit log first.
        refusals = self.audit_text().count('bad-request')
        await self.refused(device, {'ring': 'x'}, 'bad-request')
        await eventually(lambda: self.audit_text().count('bad-request') > refusals, what='the audit record')
        self.assertNotIn(cred['secret'], self.server.log())
        self.assertNotIn(cred['secret'], self.audit_text())

    def audit_text(self):
        with open(self.audit) as f:
            return f.read()

    async def test_a_device_joins_with_a_code_once_and_attaches_again_with_its_secret(self):
        d1, cred1, state = await self.make_line()
        d2, cred2, state2, code = await self.join(d1, 'phone')
        self.assertEqual(state2['line'], state['line'])
        self.assertEqual(state2['device'], cred2['device'])
        self.assertEqual([d['label'] for d in state2['devices']], ['laptop', 'phone'])
        other = await self.connect('late joiner')
        await self.refused(other, {'line-join': {'code': code, 'label': 'tablet'}}, 'code-invalid')
        await d2.close()
        _, again = await self.attach(cred2)
        self.assertEqual(again['line'], state['line'])

    async def test_rename_reaches_every_device_and_the_caller(self):
        d1, d2, line = await self.two_devices('Alice')
        await d1.send_json({'line-rename': {'name': 'Grandma'}})
        self.assertEqual((await self.recv(d1, 'line'))['name'], 'Grandma')
        self.assertEqual((await self.recv(d2, 'line'))['name'], 'Grandma')
        caller, ringing = await self.ring(line)
        self.assertEqual(ringing['name'], 'Grandma')
        await caller.send_json({'ring-cancel': {'ring': ringing['ring']}})
        self.assertEqual(await self.recv(caller, 'ring-ended'), {'ring': ringing['ring'], 'reason': 'cancelled'})

    async def test_a_new_link_replaces_the_old_which_rings_nobody(self):
        d1, d2, old = await self.two_devices()
        await d2.send_json({'line-new-link': {}})
        new = (await self.recv(d1, 'line'))['line']
        self.assertEqual((await self.recv(d2, 'line'))['line'], new)
        self.assertNotEqual(new, old)
        self.assertRegex(new, LINE_ID)
        stranger = await self.connect('old link')
        await self.refused(stranger, {'ring': {'line': old, 'name': 'Eve'}}, 'line-unknown')
        await d1.expect_nothing(0.3)
        caller, ringing = await self.ring(new)
        await self.incoming([d1, d2], ringing['ring'])

    async def test_a_removed_device_is_told_and_its_secret_stops_working(self):
        d1, cred1, _ = await self.make_line()
        d2, cred2, _, _ = await self.join(d1, 'old phone')
        await d1.send_json({'line-remove-device': {'device': cred2['device']}})
        self.assertEqual(await self.recv(d2, 'line-removed'), {'device': cred2['device']})
        state = await self.recv(d1, 'line')
        self.assertEqual([d['device'] for d in state['devices']], [cred1['device']])
        stranger = await self.connect('removed')
        await self.refused(stranger, {'line-attach': cred2}, 'device-unknown')
        # The removed connection is no device any more.
        await self.refused(d2, {'line-rename': {'name': 'Mallory'}}, 'not-attached')

    async def test_a_device_removed_while_its_line_rings_stops_ringing_and_the_others_ring_on(self):
        d1, d2, line = await self.two_devices()
        third, cred3, _, _ = await self.join(d1, 'lost phone')
        await self.recv(d2, 'line')  # the third device's join
        caller, ringing = await self.ring(line)
        await self.incoming([d1, d2, third], ringing['ring'])
        await d1.send_json({'line-remove-device': {'device': cred3['device']}})
        self.assertEqual(await self.recv(third, 'ring-stop'), {'ring': ringing['ring'], 'reason': 'removed'})
        self.assertEqual(await self.recv(third, 'line-removed'), {'device': cred3['device']})
        await self.recv(d1, 'line')
        await self.recv(d2, 'line')
        await d2.send_json({'ring-accept': {'ring': ringing['ring']}})
        self.assertEqual(await self.recv(d1, 'ring-stop'), {'ring': ringing['ring'], 'reason': 'answered-elsewhere'})
        await self.recv(d2, 'ring-connect')
        await self.recv(caller, 'ring-connect')
        await third.expect_nothing(0.3)

    async def test_accept_on_one_device_stops_the_other_and_both_sides_pair(self):
        d1, d2, line = await self.two_devices('Alice')
        caller, ringing = await self.ring(line, 'Bob')
        await self.incoming([d1, d2], ringing['ring'], 'Bob')
        await d2.send_json({'ring-accept': {'ring': ringing['ring']}})
        self.assertEqual(await self.recv(d1, 'ring-stop'), {'ring': ringing['ring'], 'reason': 'answered-elsewhere'})
        mine = await self.recv(caller, 'ring-connect')
        theirs = await self.recv(d2, 'ring-connect')
        self.assertEqual((mine['local'], mine['remote']), (theirs['remote'], theirs['local']))
        self.assertRegex(mine['local'], r'^ring-[0-9a-f]{32}$')
        self.assertNotEqual(mine['local'], mine['remote'])
        # The call itself is the tutorial's: the caller opens on its socket,
        # the device on a fresh one (its line socket keeps waiting for rings).
        await caller.open(mine['local'], mine['remote'])
        call = await self.connect('call on the device')
        await call.open(theirs['local'], theirs['remote'])
        self.assertEqual(await caller.recv_json(T), {'start': 'answer'})
        self.assertEqual(await call.recv_json(T), {'start': 'offer'})
        offer = {'sdp': {'type': 'offer', 'sdp': 'v=0\r\n'}, 'remote': mine['local']}
        await call.send_json(offer)
        self.assertEqual(await caller.recv_json(T), offer)
        # In the call the line is busy; once it ends, it rings again.
        second = await self.connect('second caller')
        await self.refused(second, {'ring': {'line': line, 'name': 'Carol'}}, 'busy')
        await call.close()
        self.assertEqual(await caller.recv_json(T), {'close': 1})

        async def rings_again():
            c = await self.connect('later caller')
            await c.send_json({'ring': {'line': line, 'name': 'Dave'}})
            got = await c.recv_json(T)
            if 'error' in got:
                self.assertError(got, 'busy')
                await c.close()
                return False
            return got
        self.assertIn('ringing', await self.until(rings_again))

    async def until(self, check, timeout=20.0):
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            got = await check()
            if got:
                return got
            self.assertLess(asyncio.get_running_loop().time(), deadline, 'never happened')
            await asyncio.sleep(0.1)

    async def test_decline_stops_every_device_and_tells_the_caller(self):
        before = metric(self.server, 'ring_declined_total')
        d1, d2, line = await self.two_devices()
        caller, ringing = await self.ring(line)
        await self.incoming([d1, d2], ringing['ring'])
        await d1.send_json({'ring-decline': {'ring': ringing['ring']}})
        self.assertEqual(await self.recv(caller, 'ring-ended'), {'ring': ringing['ring'], 'reason': 'declined'})
        for d in (d1, d2):
            self.assertEqual(await self.recv(d, 'ring-stop'), {'ring': ringing['ring'], 'reason': 'declined'})
        await self.refused(d2, {'ring-accept': {'ring': ringing['ring']}}, 'ring-unknown')
        await eventually(lambda: metric(self.server, 'ring_declined_total') == before + 1, what='declined counted')

    async def test_the_caller_cancelling_or_leaving_stops_all_ringing(self):
        d1, d2, line = await self.two_devices()
        caller, ringing = await self.ring(line)
        await self.incoming([d1, d2], ringing['ring'])
        await caller.send_json({'ring-cancel': {'ring': ringing['ring']}})
        self.assertEqual(await self.recv(caller, 'ring-ended'), {'ring': ringing['ring'], 'reason': 'cancelled'})
        for d in (d1, d2):
            self.assertEqual(await self.recv(d, 'ring-stop'), {'ring': ringing['ring'], 'reason': 'cancelled'})
        caller, ringing = await self.ring(line)
        await self.incoming([d1, d2], ringing['ring'])
        await caller.close()
        for d in (d1, d2):
            self.assertEqual(await self.recv(d, 'ring-stop'), {'ring': ringing['ring'], 'reason': 'cancelled'})

    async def test_a_line_removed_while_it_rings_tells_the_caller_at_once(self):
        device, cred, state = await self.make_line('Short-lived')
        caller, ringing = await self.ring(state['line'])
        await self.incoming([device], ringing['ring'])
        await device.send_json({'line-remove-device': {'device': cred['device']}})
        self.assertEqual(await self.recv(device, 'ring-stop'), {'ring': ringing['ring'], 'reason': 'removed'})
        self.assertEqual(await self.recv(device, 'line-removed'), {'device': cred['device']})
        ended = await self.recv(caller, 'ring-ended')
        self.assertEqual((ended['ring'], ended['reason']), (ringing['ring'], 'declined'))
        # The line is gone; a new line never takes its place in memory.
        _, _, fresh = await self.make_line('Newcomer')
        other, got = await self.ring(fresh['line'])
        self.assertNotEqual(got['ring'], ringing['ring'])

    async def test_a_second_caller_while_it_rings_hears_busy(self):
        before = metric(self.server, 'ring_busy_total')
        d1, _, state = await self.make_line()
        line = state['line']
        caller, ringing = await self.ring(line)
        await self.incoming([d1], ringing['ring'])
        second = await self.connect('second')
        await self.refused(second, {'ring': {'line': line, 'name': 'Carol'}}, 'busy')
        await self.refused(caller, {'ring': {'line': line, 'name': 'Bob'}}, 'already-ringing')
        await d1.expect_nothing(0.3)
        await eventually(lambda: metric(self.server, 'ring_busy_total') == before + 1, what='busy counted')

    async def test_a_device_that_attaches_while_its_line_rings_rings_too(self):
        d1, cred1, state = await self.make_line()
        caller, ringing = await self.ring(state['line'])
        await self.incoming([d1], ringing['ring'])
        d1b, _ = await self.attach(cred1, 'second tab')
        await self.incoming([d1b], ringing['ring'])

    async def test_forged_and_unknown_and_malformed_input_each_get_a_code(self):
        d1, cred, state = await self.make_line()
        c = await self.connect('hostile')
        forged = dict(cred, secret='0' * 32)
        await self.refused(c, {'line-attach': forged}, 'device-unknown')
        await self.refused(c, {'line-attach': {'device': 'f' * 16, 'secret': cred['secret']}}, 'device-unknown')
        await self.refused(c, {'line-rename': {'name': 'x'}}, 'not-attached')
        await self.refused(c, {'line-invite': {}}, 'not-attached')
        await self.refused(c, {'ring': {'line': 'acorn-acorn-acorn-acorn-0000000', 'name': 'Eve'}}, 'line-unknown')
        await self.refused(c, {'ring': {'line': 'x' * 5000, 'name': 'Eve'}}, 'line-unknown')
        await self.refused(c, {'ring': 'x'}, 'bad-request')
        await self.refused(c, {'ring': {'line': 5, 'name': 'Eve'}}, 'bad-request')
        await self.refused(c, {'ring': {'line': state['line']}}, 'bad-request')
        await self.refused(c, {'ring': {'line': state['line'], 'name': 'E\u0007ve'}}, 'bad-request')
        await self.refused(c, {'ring': {'line': state['line'], 'name': 'E' * 65}}, 'name-too-long')
        await self.refused(c, {'ring-accept': {'ring': 'nosuchring'}}, 'ring-unknown')
        await self.refused(c, {'ring-cancel': {}}, 'bad-request')
        await self.refused(c, {'line-create': {}}, 'bad-request')
        await self.refused(c, {'line-create': {'name': '\u65e5' * 22}}, 'name-too-long')
        await self.refused(c, {'line-create': {'name': 'A', 'label': ['x']}}, 'bad-request')
        await self.refused(c, {'line-join': {'code': 'nope', 'label': 'x'}}, 'code-invalid')
        await self.refused(d1, {'line-rename': {'name': 'N' * 65}}, 'name-too-long')
        # A right-to-left override would show "Bob\u202emoc.knab" as "Bobbank.com".
        await self.refused(d1, {'line-rename': {'name': 'Bob\u202emoc.knab'}}, 'bad-request')
        await self.refused(c, {'ring': {'line': state['line'], 'name': '\u2067Eve'}}, 'bad-request')
        await self.refused(d1, {'line-remove-device': {'device': 'f' * 16}}, 'device-unknown')
        # Nothing of it was stored: the line is as it was, and the socket still works.
        _, again = await self.attach(cred)
        self.assertEqual((again['name'], len(again['devices'])), ('Alice', 1))
        self.assertEqual(await c.ping_pong(T), {'pong': 1})


class NoAnswerTest(RingClient, DuetTestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='duet-ring-')
        cls.server = Server(extra_args=['--ring-db', os.path.join(cls.tmp, 'ring.db'), '--ring-time', '1.5'])
        cls.server.__enter__()

    @classmethod
    def tearDownClass(cls):
        stop_checked(cls.server)
        shutil.rmtree(cls.tmp, True)

    async def test_no_answer_is_a_missed_call_on_every_device(self):
        d1, d2, line = await self.two_devices()
        caller, ringing = await self.ring(line, 'Bob')
        await self.incoming([d1, d2], ringing['ring'])
        self.assertEqual(await self.recv(caller, 'ring-ended'), {'ring': ringing['ring'], 'reason': 'no-answer'})
        for d in (d1, d2):
            self.assertEqual(await self.recv(d, 'ring-stop'), {'ring': ringing['ring'], 'reason': 'missed'})
            missed = await self.recv(d, 'missed')
            self.assertEqual((missed['ring'], missed['caller']), (ringing['ring'], 'Bob'))
        await d1.send_json({'line-rename': {'name': 'Alice'}})
        state = await self.recv(d1, 'line')
        self.assertEqual([m['caller'] for m in state['missed']], ['Bob'])
        self.assertEqual(state['missed'][0]['at'], missed['at'])
        self.assertGreaterEqual(metric(self.server, 'ring_missed_total'), 1)


class LimitsTest(RingClient, DuetTestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='duet-ring-')
        cls.server = Server(extra_args=['--ring-db', os.path.join(cls.tmp, 'ring.db'), '--ring-rate', '3',
                                        '--ring-line-rate', '2'])
        cls.server.__enter__()

    @classmethod
    def tearDownClass(cls):
        stop_checked(cls.server)
        shutil.rmtree(cls.tmp, True)

    async def test_rings_per_line_then_per_address_are_limited_and_counted(self):
        _, _, state = await self.make_line()
        for _ in range(2):
            caller, ringing = await self.ring(state['line'])
            await caller.send_json({'ring-cancel': {'ring': ringing['ring']}})
            await self.recv(caller, 'ring-ended')
        c = await self.connect('third')
        await self.refused(c, {'ring': {'line': state['line'], 'name': 'Bob'}}, 'line-rate-limited')
        # A fourth ring from this address, to any line, even an unknown one.
        await self.refused(c, {'ring': {'line': 'no-such-line', 'name': 'Bob'}}, 'ring-rate-limited')
        self.assertEqual(metric(self.server, 'ring_limited_line_total'), 1)
        self.assertEqual(metric(self.server, 'ring_limited_caller_total'), 1)
        self.assertEqual(metric(self.server, 'ring_rings_total'), 2)


class RestartTest(RingClient, DuetTestCase):
    """Lines, devices, names and links live in SQLite in the state folder."""

    def setUp(self):
        self.state = tempfile.mkdtemp(prefix='duet-ring-state-')
        self.addCleanup(shutil.rmtree, self.state, True)

    def start(self):
        # No --ring-db: the store's default place is ring.db in the state folder.
        self.server = Server(state_dir=self.state)
        self.server.__enter__()
        self.addCleanup(self.server.cleanup)  # kills it if a failed test left it running
        return self.server

    async def test_lines_and_devices_survive_a_restart(self):
        srv = self.start()
        d1, cred1, state = await self.make_line('Alice')
        d2, cred2, _, _ = await self.join(d1)
        await d1.send_json({'line-rename': {'name': 'Alice at home'}})
        await self.recv(d1, 'line')
        await d1.close()
        await d2.close()
        stop_checked(srv)
        self.assertTrue(os.path.isfile(os.path.join(self.state, 'ring.db')))
        srv = self.start()
        d1, again = await self.attach(cred1)
        self.assertEqual((again['line'], again['name'], len(again['devices'])),
                         (state['line'], 'Alice at home', 2))
        d2, _ = await self.attach(cred2)
        caller, ringing = await self.ring(state['line'])
        await self.incoming([d1, d2], ringing['ring'])
        for c in (d1, d2, caller):
            await c.close()
        stop_checked(srv)


class AuthTest(RingClient, DuetTestCase):
    """With --auth-secret making a line needs a call token (any id); the
    ids of an accepted ring open without one."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='duet-ring-auth-')
        cls.secret_file = os.path.join(cls.tmp, 'secret')
        with open(cls.secret_file, 'w') as f:
            f.write('a-secret-of-at-least-sixteen-bytes\n')
        cls.server = Server(extra_args=['--ring-db', os.path.join(cls.tmp, 'ring.db'),
                                        '--auth-secret', cls.secret_file])
        cls.server.__enter__()

    @classmethod
    def tearDownClass(cls):
        stop_checked(cls.server)
        shutil.rmtree(cls.tmp, True)

    def token(self, *extra, id='line-create'):
        proc = run_duetd(['token', '--auth-secret', self.secret_file, '--id', id, '--ttl', '1h'] + list(extra))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return proc.stdout.strip()

    async def test_making_a_line_needs_a_valid_token(self):
        c = await self.connect('no token')
        await self.refused(c, {'line-create': {'name': 'Alice'}}, 'auth-missing')
        await self.refused(c, {'line-create': {'name': 'Alice', 'token': 'v1.forged.token'}}, 'auth-invalid')
        # A call token for a person makes no line: a line outlives the token.
        await self.refused(c, {'line-create': {'name': 'Alice', 'token': self.token(id='alice')}}, 'auth-wrong-id')
        d1, _, state = await self.make_line('Alice', extra={'token': self.token()})
        self.assertRegex(state['line'], LINE_ID)
        # Ringing needs no token (the link is the invitation), nor the call's opens.
        caller, ringing = await self.ring(state['line'])
        await self.incoming([d1], ringing['ring'])
        await d1.send_json({'ring-accept': {'ring': ringing['ring']}})
        mine = await self.recv(caller, 'ring-connect')
        theirs = await self.recv(d1, 'ring-connect')
        await caller.send_json({'open': {'local': mine['local'], 'remote': mine['remote'], 'resume': ''}})
        call = await self.connect('device call')
        await call.open(theirs['local'], theirs['remote'])
        start = await caller.recv_json(T)
        self.assertEqual(start['start'], 'answer')
        self.assertEqual(await call.recv_json(T), {'start': 'offer'})
        # A second plain open of the same ids needs a token; a resume of the
        # call (a dropped WebSocket coming back) passes with its resume token.
        thief = await self.connect('second open')
        await self.refused(thief, {'open': {'local': mine['local'], 'remote': mine['remote']}}, 'auth-missing')
        drop(caller)
        back = await self.connect('caller back')
        await back.send_json({'open': {'local': mine['local'], 'remote': mine['remote'], 'resume': start['resume']}})
        self.assertEqual((await back.recv_json(T))['resumed'], 'answer')
        self.assertEqual(await call.recv_json(T), {'resumed': 'offer'})
        # Made-up ids still need a token.
        other = await self.connect('made up')
        await self.refused(other, {'open': {'local': 'ring-' + '0' * 32, 'remote': mine['local']}}, 'auth-missing')


class OpenTimeoutTest(RingClient, DuetTestCase):
    """A device waiting for rings sends line-attach and then nothing: the
    core's open timeout, meant for clients that never send open, spares it."""

    async def test_an_attached_device_outlives_the_open_timeout(self):
        tmp = tempfile.mkdtemp(prefix='duet-ring-timeout-')
        self.addCleanup(shutil.rmtree, tmp, True)
        self.server = Server(extra_args=['--open-timeout', '1', '--ring-db', os.path.join(tmp, 'ring.db')])
        self.server.__enter__()
        self.addCleanup(stop_checked, self.server)
        device, _, state = await self.make_line()
        silent = await self.connect('silent')
        code, _ = await silent.expect_close(timeout=T)
        self.assertEqual(code, 4408)
        self.assertEqual(await device.ping_pong(T), {'pong': 1})
        caller, ringing = await self.ring(state['line'])
        await self.incoming([device], ringing['ring'])


class CreateLimitTest(RingClient, DuetTestCase):

    async def test_lines_made_per_address_are_limited(self):
        tmp = tempfile.mkdtemp(prefix='duet-ring-create-')
        self.addCleanup(shutil.rmtree, tmp, True)
        self.server = Server(extra_args=['--ring-create-rate', '2', '--ring-db', os.path.join(tmp, 'ring.db')])
        self.server.__enter__()
        self.addCleanup(stop_checked, self.server)
        lines = {(await self.make_line('Line %d' % i))[2]['line'] for i in range(2)}
        self.assertEqual(len(lines), 2)
        c = await self.connect('third')
        await self.refused(c, {'line-create': {'name': 'One too many'}}, 'create-rate-limited')
        self.assertEqual(metric(self.server, 'ring_lines_created_total'), 2)

    async def test_the_store_holds_at_most_max_lines(self):
        tmp = tempfile.mkdtemp(prefix='duet-ring-max-')
        self.addCleanup(shutil.rmtree, tmp, True)
        self.server = Server(extra_args=['--ring-max-lines', '2', '--ring-db', os.path.join(tmp, 'ring.db')])
        self.server.__enter__()
        self.addCleanup(stop_checked, self.server)
        first, cred, _ = await self.make_line('One')
        await self.make_line('Two')
        c = await self.connect('third')
        await self.refused(c, {'line-create': {'name': 'Three'}}, 'lines-full')
        self.assertEqual(metric(self.server, 'ring_limited_full_total'), 1)
        # A line that goes makes room.
        await first.send_json({'line-remove-device': {'device': cred['device']}})
        self.assertEqual(await self.recv(first, 'line-removed'), {'device': cred['device']})
        await c.send_json({'line-create': {'name': 'Three'}})
        await self.recv(c, 'line-credentials')
        self.assertEqual(metric(self.server, 'ring_lines_created_total'), 3)

    async def test_renames_new_links_and_invites_of_one_line_are_limited(self):
        tmp = tempfile.mkdtemp(prefix='duet-ring-changes-')
        self.addCleanup(shutil.rmtree, tmp, True)
        self.server = Server(extra_args=['--ring-db', os.path.join(tmp, 'ring.db')])
        self.server.__enter__()
        self.addCleanup(stop_checked, self.server)
        device, _, _ = await self.make_line('Churn')
        changes = [{'line-rename': {'name': 'Name %d' % i}} for i in range(10)] + \
                  [{'line-new-link': {}} for _ in range(10)] + [{'line-invite': {}} for _ in range(10)]
        for change in changes:  # 30 an hour
            await device.send_json(change)
            await self.recv(device, 'line-invite' if 'line-invite' in change else 'line')
        for change in ({'line-rename': {'name': 'Again'}}, {'line-new-link': {}}, {'line-invite': {}}):
            await self.refused(device, change, 'change-rate-limited')
        self.assertEqual(metric(self.server, 'ring_limited_change_total'), 3)
        # Another line is not held back by this one.
        other, _, _ = await self.make_line('Calm')
        await other.send_json({'line-rename': {'name': 'Still calm'}})
        self.assertEqual((await self.recv(other, 'line'))['name'], 'Still calm')


class LinesOffTest(RingClient, DuetTestCase):

    async def test_with_lines_off_every_ring_message_is_refused_and_the_rest_works(self):
        tmp = tempfile.mkdtemp(prefix='duet-ring-off-')
        self.addCleanup(shutil.rmtree, tmp, True)
        self.server = Server(extra_args=['--ring-lines', 'off', '--ring-db', os.path.join(tmp, 'ring.db')])
        self.server.__enter__()
        self.addCleanup(stop_checked, self.server)
        c = await self.connect('off')
        await self.refused(c, {'line-create': {'name': 'Alice'}}, 'lines-off')
        await self.refused(c, {'ring': {'line': 'x', 'name': 'Bob'}}, 'lines-off')
        await self.assert_server_still_pairs()
        self.assertFalse(os.path.exists(os.path.join(tmp, 'ring.db')))


if __name__ == '__main__':
    unittest.main(verbosity=2)
