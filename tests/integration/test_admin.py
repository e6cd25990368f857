"""The admin API (--admin-token-file, on --admin-listen only): a bearer
token on every request; GET /admin/connections lists who is connected, with
what the pairing plugin knows (ids, in a call) and the calls; POST
/admin/connections/ID/close tells the client a reason and closes it (4403,
which the web client does not reconnect on); POST /admin/drain drains as
SIGUSR1 does. `duetd admin list|close|drain` asks the same API.

Run: DUETD=build/core/duetd /usr/bin/python3 tests/integration/test_admin.py
"""

import http.client
import json
import os
import re
import subprocess
import tempfile
import unittest
import urllib.parse

from duet_harness import WAIT, DuetTestCase, Server, duetd_command, raw_request, run_duetd, unique_id
from test_metrics import free_port, scrape

TOKEN = 'admin-token-for-the-tests-0123456789'


def call_api(admin, method, path, token=TOKEN, body=None, headers=None):
    """(status, headers, parsed JSON or raw text) of one request to the admin port."""
    conn = http.client.HTTPConnection(admin[0], admin[1], timeout=10)
    try:
        h = dict(headers or {})
        if token is not None:
            h['Authorization'] = 'Bearer ' + token
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        raw = r.read().decode('utf-8', 'replace')
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw
        return r.status, {k.lower(): v for k, v in r.getheaders()}, parsed
    finally:
        conn.close()


class AdminCase(DuetTestCase):

    def start_server(self, *extra, token=TOKEN):
        folder = tempfile.mkdtemp(prefix='duet-admin-')
        self.token_file = os.path.join(folder, 'admin-token')
        with open(self.token_file, 'w') as f:
            f.write(token + '\n')
        self.admin = ('127.0.0.1', free_port())
        self.server = Server(extra_args=['--admin-listen', '%s:%d' % self.admin,
                                         '--admin-token-file', self.token_file] + list(extra))
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

    def listing(self):
        status, _, body = call_api(self.admin, 'GET', '/admin/connections')
        self.assertEqual(status, 200, body)
        return body

    def conn_of(self, listing, local):
        found = [c for c in listing['connections'] if c.get('pairing', {}).get('local') == local]
        self.assertEqual(len(found), 1, listing)
        return found[0]


class TokenTest(AdminCase):

    async def test_no_token_or_a_wrong_one_is_refused_with_401_and_counted(self):
        self.start_server()
        for token in (None, 'wrong', TOKEN + 'x', TOKEN[:-1], ''):
            status, headers, body = call_api(self.admin, 'GET', '/admin/connections', token=token)
            self.assertEqual(status, 401, (token, body))
            self.assertEqual(headers.get('www-authenticate'), 'Bearer')
            self.assertEqual(body['error'], 'unauthorized')
        status, _, _ = call_api(self.admin, 'GET', '/admin/connections', token=None,
                                headers={'Authorization': 'Basic ' + TOKEN})
        self.assertEqual(status, 401)
        status, _, _ = call_api(self.admin, 'POST', '/admin/drain', token='wrong')
        self.assertEqual(status, 401)
        self.assertEqual(scrape(self.server, admin=self.admin).value('duet_admin_refused_total'), 7)
        self.assertIsNone(self.server.proc.poll(), 'a refused drain drains nothing')
        self.assertEqual(call_api(self.admin, 'GET', '/healthz', token=None)[0], 200)

    async def test_without_a_token_file_the_api_is_off(self):
        admin = ('127.0.0.1', free_port())
        srv = Server(extra_args=['--admin-listen', '%s:%d' % admin])
        srv.start()
        self.addCleanup(srv.cleanup)
        status, _, body = call_api(admin, 'GET', '/admin/connections')
        self.assertEqual(status, 404, body)
        self.assertIn('--admin-token-file', body['message'])

    async def test_the_api_is_never_on_the_public_port(self):
        srv = self.start_server()
        auth = ('Authorization: Bearer %s\r\n' % TOKEN).encode()
        r = raw_request(srv, b'GET /admin/connections HTTP/1.1\r\nHost: localhost\r\n' + auth +
                        b'Connection: close\r\n\r\n')
        self.assertEqual(r.status, 404)
        r = raw_request(srv, b'POST /admin/drain HTTP/1.1\r\nHost: localhost\r\n' + auth +
                        b'Content-Length: 0\r\nConnection: close\r\n\r\n')
        self.assertEqual(r.status, 405)
        self.assertIsNone(srv.proc.poll())


class OptionTest(unittest.TestCase):

    def token_file(self, text):
        folder = tempfile.mkdtemp(prefix='duet-admin-')
        path = os.path.join(folder, 'token')
        with open(path, 'w') as f:
            f.write(text)
        return path

    def test_bad_token_files_and_a_missing_admin_listen_are_usage_errors(self):
        cases = [
            (['--admin-token-file', self.token_file(TOKEN)], '--admin-listen'),
            (['--admin-listen', '127.0.0.1:%d' % free_port(), '--admin-token-file', self.token_file('short')],
             '16 to 400 printable ASCII characters'),
            (['--admin-listen', '127.0.0.1:%d' % free_port(), '--admin-token-file',
              self.token_file('0123456789abcdef\x00binary-bytes')], '16 to 400 printable ASCII characters'),
            (['--admin-listen', '127.0.0.1:%d' % free_port(), '--admin-token-file', self.token_file('x' * 401)],
             '16 to 400 printable ASCII characters'),
            (['--admin-listen', '127.0.0.1:%d' % free_port(), '--admin-token-file', '/nonexistent/token'],
             '/nonexistent/token'),
        ]
        for args, says in cases:
            proc = run_duetd(args + ['--port', '0'])
            self.assertEqual(proc.returncode, 2, (args, proc.stderr))
            self.assertIn(says, proc.stderr)


class ListCloseDrainTest(AdminCase):

    async def test_the_listing_shows_each_connection_its_ids_and_the_call(self):
        self.start_server()
        a, b, a_id, b_id = await self.paired()
        c_id = unique_id('carol')
        c = await self.connect('carol')
        await c.open(c_id, unique_id('nobody'))
        await c.synced()
        listing = self.listing()
        self.assertEqual(len(listing['connections']), 3, listing)
        self.assertRegex(listing['node'], r'.+:\d+')
        alice = self.conn_of(listing, a_id)
        self.assertEqual(alice['pairing'], {'local': a_id, 'remote': b_id, 'in_call': True})
        self.assertEqual(alice['address'], '127.0.0.1')
        self.assertRegex(alice['since'], r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')
        self.assertIsInstance(alice['id'], int)
        self.assertEqual(self.conn_of(listing, c_id)['pairing']['in_call'], False)
        self.assertEqual(len(listing['calls']), 1, listing)
        call = listing['calls'][0]
        self.assertEqual((call['offerer'], call['answerer']), (b_id, a_id))
        self.assertEqual(call['answerer_conn'], alice['id'])
        metrics = scrape(self.server, admin=self.admin)
        self.assertEqual(metrics.value('duet_admin_actions_total', action='list'), 1)

    async def test_close_tells_the_client_the_reason_closes_with_4403_and_the_partner_hears_it(self):
        self.start_server()
        a, b, a_id, b_id = await self.paired()
        target = self.conn_of(self.listing(), a_id)['id']
        reason = 'Spam reported by 3 people — see you in 24 h'
        path = '/admin/connections/%d/close?reason=%s' % (target, urllib.parse.quote(reason))
        status, _, body = call_api(self.admin, 'POST', path)
        self.assertEqual((status, body), (200, {'closed': target, 'reason': reason}))
        err = await a.recv_json()
        self.assertEqual(err, {'error': {'code': 'closed-by-admin', 'message': reason}})
        await a.expect_close(4403)
        self.assertEqual(await b.recv_json(), {'close': 1}, 'the partner is told the call ended')
        self.assertNotIn(a_id, [c['pairing']['local'] for c in self.listing()['connections']])
        # Again: it is gone.
        status, _, body = call_api(self.admin, 'POST', '/admin/connections/%d/close' % target)
        self.assertEqual((status, body['error']), (404, 'no-such-connection'))
        self.assertEqual(scrape(self.server, admin=self.admin).value('duet_admin_actions_total', action='close'), 1)

    async def test_bad_close_requests_are_answered_and_close_nothing(self):
        self.start_server()
        a, b, a_id, _ = await self.paired()
        target = self.conn_of(self.listing(), a_id)['id']
        cases = [
            ('GET', '/admin/connections/%d/close' % target, None, 405),
            ('POST', '/admin/connections/%d/close?reason=%s' % (target, 'x' * 201), None, 400),
            ('POST', '/admin/connections/%d/close?reason=%s' % (target, 'x' * 1500), None, 400),
            ('POST', '/admin/connections/0/close', None, 404),
            ('POST', '/admin/connections/abc/close', None, 404),
            ('POST', '/admin/connections', None, 405),
            ('GET', '/admin/drain', None, 405),
            ('GET', '/admin/nothing-here', None, 404),
        ]
        for method, path, body, want in cases:
            status, _, answer = call_api(self.admin, method, path, body=body)
            self.assertEqual(status, want, (method, path, answer))
        # A body is refused: the reason goes in the query.
        status, _, _ = call_api(self.admin, 'POST', '/admin/connections/%d/close' % target, body='reason=x')
        self.assertEqual(status, 400)
        await a.expect_nothing(0.3)
        self.assertEqual(len(self.listing()['connections']), 2)

    async def test_drain_through_the_api_is_a_drain(self):
        srv = self.start_server('--drain-timeout', '120')
        a, b, _, _ = await self.paired()
        status, _, body = call_api(self.admin, 'POST', '/admin/drain')
        self.assertEqual((status, body), (202, {'draining': True, 'connections': 2}))
        self.assertEqual(call_api(self.admin, 'GET', '/healthz', token=None)[2]['status'], 'draining')
        late = await self.connect('late')
        self.assertEqual((await late.recv_json())['error']['code'], 'server-draining')
        await a.close()
        await b.close()
        await late.expect_close(1012)
        self.assertEqual(srv.wait(timeout=WAIT), 0, srv.log())


class CommandTest(AdminCase):

    def admin_command(self, *args):
        return subprocess.run(duetd_command() + ['admin'] + list(args) +
                              ['--admin', '%s:%d' % self.admin, '--token-file', self.token_file],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)

    async def test_duetd_admin_list_close_and_drain(self):
        srv = self.start_server('--drain-timeout', '120')
        a, b, a_id, b_id = await self.paired()
        proc = self.admin_command('list')
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn('2 connection(s)', proc.stdout)
        self.assertRegex(proc.stdout, r'%s -> %s \(in a call\)' % (re.escape(a_id), re.escape(b_id)))
        self.assertIn('%s <-> %s' % (b_id, a_id), proc.stdout)
        proc = self.admin_command('list', '--json', 'yes')
        target = self.conn_of(json.loads(proc.stdout), a_id)['id']
        proc = self.admin_command('close', '--id', str(target), '--reason', 'bye & thanks')
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(json.loads(proc.stdout), {'closed': target, 'reason': 'bye & thanks'})
        self.assertEqual((await a.recv_json())['error']['message'], 'bye & thanks')
        proc = self.admin_command('close', '--id', str(target))
        self.assertEqual(proc.returncode, 1)
        self.assertIn('404', proc.stderr)
        proc = self.admin_command('drain')
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(json.loads(proc.stdout)['draining'], True)
        await b.close()
        self.assertEqual(srv.wait(timeout=WAIT), 0, srv.log())

    async def test_usage_errors_and_a_wrong_token_have_their_exit_codes(self):
        self.start_server()
        self.assertEqual(self.admin_command('bogus').returncode, 2)
        self.assertEqual(self.admin_command('close').returncode, 2)
        self.assertEqual(self.admin_command('close', '--id', 'x1').returncode, 2)
        with open(self.token_file, 'w') as f:
            f.write('not-the-token-at-all\n')
        proc = self.admin_command('list')
        self.assertEqual(proc.returncode, 1)
        self.assertIn('401', proc.stderr)


if __name__ == '__main__':
    unittest.main()
