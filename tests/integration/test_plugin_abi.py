"""Third-party plugins loaded from a path: a working one (test-echo) alongside
pairing, the same plugin built against the frozen ABI 1.3 header
(tests/abi/v1.3), one built for the wrong ABI, a missing one, and bad plugin
options.

Needs $DUET_TEST_PLUGIN_DIR with echo_plugin.so, frozen_echo_plugin.so and
wrong_abi_plugin.so (the build makes them from tests/abi/echo_plugin.c).

Run: DUETD=build/core/duetd DUET_TEST_PLUGIN_DIR=build/tests/integration \
     /usr/bin/python3 tests/integration/test_plugin_abi.py
"""

import os
import shutil
import tempfile
import unittest

from duet_harness import DuetTestCase, Server, SharedServerTestCase, run_duetd, stop_checked, unique_id

PLUGIN_DIR = os.environ.get('DUET_TEST_PLUGIN_DIR', '')


def plugin(name):
    if not PLUGIN_DIR:
        raise unittest.SkipTest('DUET_TEST_PLUGIN_DIR is not set')
    path = os.path.join(PLUGIN_DIR, name)
    if not os.path.isfile(path):
        raise AssertionError('test plugin %s was not built (DUET_TEST_PLUGIN_DIR=%s)'
                             % (path, PLUGIN_DIR))
    return os.path.abspath(path)


class EchoPluginTest(SharedServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.echo = plugin('echo_plugin.so')
        cls.server_args = ['--plugin', cls.echo]
        super().setUpClass()

    async def test_an_echo_message_comes_back_unchanged(self):
        c = await self.connect('echo')
        for text in ['{"echo":{"x":1}}', '{"echo":null}',
                     '{ "echo" : [1, "two", {"three": 3.0}] , "extra":"\u00e9\\u00e9" }',
                     '{"echo":"%s"}' % ('e' * 10000)]:
            await c.send_text(text)
            self.assertEqual(await c.recv_text(), text)
        await c.expect_nothing(0.2)

    async def test_echo_works_before_and_after_open_and_only_for_the_sender(self):
        a, b = await self.pair()
        await a.send_text('{"echo":{"from":"a"}}')
        self.assertEqual(await a.recv_json(), {'echo': {'from': 'a'}})
        await b.expect_nothing(0.3)
        lone = await self.connect('lone')
        await lone.send_text('{"echo":{"before":"open"}}')
        self.assertEqual(await lone.recv_json(), {'echo': {'before': 'open'}})

    async def test_pairing_still_works_alongside_the_echo_plugin(self):
        a, b = await self.pair()
        m = {'sdp': {'type': 'offer', 'sdp': 'v=0'}, 'remote': a.name}
        await b.send_json(m)
        self.assertEqual(await a.recv_json(), m)
        self.assertEqual(await a.ping_pong(), {'pong': 1})
        await b.close()
        self.assertEqual(await a.recv_json(), {'close': 1})

    async def test_unknown_types_are_still_refused_with_the_echo_plugin_loaded(self):
        c = await self.connect('unknown')
        await c.send_text('{"echoo":1}')
        self.assertError(await c.recv_json(), 'unknown-type')


class HostTableTests:
    """What test-echo does with the rest of the host table; run for the
    plugin built against the live header and for the frozen ABI 1.3 one."""

    async def test_an_option_given_on_the_command_line_reaches_the_plugin(self):
        c = await self.connect('option')
        await c.send_text('{"echo-option":1}')
        self.assertEqual(await c.recv_json(), {'greeting': 'hi there'})

    async def test_connection_facts_arrive_in_the_plugin_s_struct(self):
        c = await self.connect('info')
        await c.send_text('{"echo-info":1}')
        info = (await c.recv_json())['info']
        self.assertEqual(info['addr'], '127.0.0.1')
        self.assertEqual(info['port'], c.ws.local_address[1])
        self.assertEqual(info['tls'], 'TLSv1.3')
        self.assertEqual(info['close_code'], 0)

    async def test_a_timer_fires_and_an_event_comes_back_through_on_event(self):
        c = await self.connect('timer')
        await c.send_text('{"echo-later":1}')
        self.assertEqual(await c.recv_json(), {'later': 1})
        await c.send_text('{"echo-event":1}')
        self.assertEqual(await c.recv_json(), {'event': {'n': 7}})

    async def test_the_plugin_closes_a_connection_with_its_code(self):
        c = await self.connect('closed')
        await c.send_text('{"echo-close":1}')
        await c.expect_close(4000)


class EchoHostTableTest(HostTableTests, SharedServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.server_args = ['--plugin', plugin('echo_plugin.so'), '--plugin-opt', 'test-echo.greeting=hi there']
        super().setUpClass()


class FrozenAbiPluginTest(HostTableTests, SharedServerTestCase):
    """A plugin built against the frozen copy of plugin.h for ABI 1.3 loads
    into this duetd and works over a real TLS WebSocket."""

    @classmethod
    def setUpClass(cls):
        cls.server_args = ['--plugin', plugin('frozen_echo_plugin.so'),
                           '--plugin-opt', 'test-echo.greeting=hi there']
        super().setUpClass()

    async def test_echo_and_rejections_work_as_with_the_live_header(self):
        c = await self.connect('frozen')
        await c.send_text('{"echo":{"x":1}}')
        self.assertEqual(await c.recv_text(), '{"echo":{"x":1}}')
        await c.send_text('{"echo-fails":1}')
        self.assertError(await c.recv_json(), 'echo-refused')
        a, b = await self.pair()
        await a.send_json({'sdp': {'type': 'offer'}, 'remote': b.name})
        self.assertEqual(await b.recv_json(), {'sdp': {'type': 'offer'}, 'remote': b.name})

    def test_list_plugins_names_abi_1_3(self):
        proc = run_duetd(['--list-plugins', '--plugin', plugin('frozen_echo_plugin.so')])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        line = [l for l in proc.stdout.splitlines() if l.startswith('test-echo ')][0]
        self.assertIn('ABI 1.3', line)
        self.assertIn('--plugin-opt test-echo.greeting=VALUE', proc.stdout)
        self.assertIn('--plugin-opt test-echo.unused=VALUE', proc.stdout)


class Abi10PluginTest(SharedServerTestCase):
    """A plugin laid out as ABI 1.0 was: shorter descriptor, three-pointer
    option entries, and a close call without a valid why."""

    @classmethod
    def setUpClass(cls):
        cls.server_args = ['--plugin', plugin('abi_1_0_plugin.so'), '--plugin-opt', 'test-echo.greeting=hi there',
                           '--plugin-opt', 'test-echo.unused=x']
        super().setUpClass()

    async def test_its_options_are_read_with_the_1_0_entry_size(self):
        c = await self.connect('option')
        await c.send_text('{"echo-option":1}')
        self.assertEqual(await c.recv_json(), {'greeting': 'hi there'})

    async def test_its_close_without_why_still_closes(self):
        c = await self.connect('closed')
        await c.send_text('{"echo-close":1}')
        await c.expect_close(4000)

    def test_list_plugins_names_abi_1_0_and_both_options(self):
        proc = run_duetd(['--list-plugins', '--plugin', plugin('abi_1_0_plugin.so')])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn('ABI 1.0', [l for l in proc.stdout.splitlines() if l.startswith('test-echo ')][0])
        self.assertIn('--plugin-opt test-echo.greeting=VALUE  what echo-option answers', proc.stdout)
        self.assertIn('--plugin-opt test-echo.unused=VALUE  a second option', proc.stdout)


class AllowListPluginTest(DuetTestCase):
    """A plugin says where it belongs in the chain (ABI 1.5 stage): an
    allow-list loaded with just --plugin refuses an unlisted id before
    pairing sees its open. The same plugin built against the frozen 1.3
    header cannot say so and keeps the old place after pairing, unless the
    operator moves it with --plugin-stage."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='duet-allowlist-')
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.ids = os.path.join(self.tmp, 'ids')
        self.alice, self.bob, self.mallory = unique_id('alice'), unique_id('bob'), unique_id('mallory')
        with open(self.ids, 'w') as f:
            f.write('%s\n%s\n' % (self.alice, self.bob))

    def start(self, build, *extra):
        self.server = Server(extra_args=['--plugin', plugin(build), '--plugin-opt', 'test-allowlist.file=' + self.ids]
                             + list(extra))
        self.server.__enter__()
        self.addCleanup(stop_checked, self.server)

    def chain(self, build, *extra):
        proc = run_duetd(['--list-plugins', '--plugin', plugin(build), '--plugin-opt',
                          'test-allowlist.file=' + self.ids] + list(extra))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return [line.split()[0] for line in proc.stdout.splitlines() if not line.startswith(' ')]

    async def assert_refused_before_pairing(self):
        mallory = await self.connect('mallory')
        await mallory.open(self.mallory, self.alice)
        self.assertError(await mallory.recv_json(), 'not-allowed')
        # Pairing never saw mallory's open: alice naming mallory waits alone.
        alice = await self.connect('alice')
        await alice.open(self.alice, self.mallory)
        await alice.expect_nothing(0.5)
        await mallory.expect_nothing(0.1)

    async def test_a_plugin_that_declares_admission_goes_before_pairing_with_just_plugin(self):
        chain = self.chain('allowlist_plugin.so')
        self.assertLess(chain.index('test-allowlist'), chain.index('pairing'), chain)
        self.assertLess(chain.index('auth'), chain.index('test-allowlist'),
                        'bundled first within the stage: %r' % chain)
        self.start('allowlist_plugin.so')
        await self.assert_refused_before_pairing()
        await self.assert_listed_ids_pair()

    async def test_a_plugin_built_for_abi_1_3_keeps_its_old_place_after_the_bundled_ones(self):
        chain = self.chain('frozen_allowlist_plugin.so')
        self.assertEqual(chain[-1], 'test-allowlist', chain)
        self.start('frozen_allowlist_plugin.so')
        mallory = await self.connect('mallory')
        await mallory.open(self.mallory, self.alice)
        await mallory.expect_nothing(0.3)  # pairing took the open: the old, unsafe place

    async def test_the_operator_moves_a_1_3_plugin_before_pairing_with_plugin_stage(self):
        stage = ['--plugin-stage', 'test-allowlist=admission']
        chain = self.chain('frozen_allowlist_plugin.so', *stage)
        self.assertLess(chain.index('test-allowlist'), chain.index('pairing'), chain)
        self.start('frozen_allowlist_plugin.so', *stage)
        await self.assert_refused_before_pairing()
        await self.assert_listed_ids_pair()

    def test_list_plugins_shows_the_chain_with_stages_in_order(self):
        proc = run_duetd(['--list-plugins', '--plugin', plugin('frozen_allowlist_plugin.so'), '--plugin-opt',
                          'test-allowlist.file=' + self.ids])
        lines = [line for line in proc.stdout.splitlines() if not line.startswith(' ')]
        self.assertRegex(lines[0], r'^keepalive .*stage transport, 1 of \d+ in the chain\]$')
        self.assertRegex(lines[-1], r'^test-allowlist .*ABI 1\.3, stage observer \(inherited\), \d+ of \d+')

    def test_a_stage_for_a_plugin_that_is_not_loaded_is_a_usage_error_in_words(self):
        proc = run_duetd(['--port', '0', '--state-dir', os.path.join(self.tmp, 'state'),
                          '--plugin-stage', 'nosuch=admission'], timeout=30)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn('--plugin-stage nosuch=admission: no plugin named "nosuch" is loaded', proc.stderr)
        self.assertNotIn('listening on', proc.stderr)

    async def assert_listed_ids_pair(self):
        bob = await self.connect('bob')
        await bob.open(self.bob, self.alice)
        alice = await self.connect('alice, again')
        await alice.open(self.alice, self.bob)
        self.assertEqual(await alice.recv_json(), {'start': 'offer'})
        self.assertEqual(await bob.recv_json(), {'start': 'answer'})


class WrapperPluginTest(SharedServerTestCase):
    """What duet/plugin.hpp promises, checked with tests/abi/wrapper_plugin.cpp."""

    @classmethod
    def setUpClass(cls):
        cls.server_args = ['--plugin', plugin('wrapper_plugin.so'), '--plugin-opt', 'test-wrapper.loud=yes']
        super().setUpClass()

    async def test_a_timer_callback_that_throws_is_logged_and_duetd_keeps_serving(self):
        c = await self.connect('throw')
        await c.send_text('{"wrapper-throw":1}')
        self.assertEqual(await c.recv_json(), {'after': 1})
        self.server.wait_for_log(r'test-wrapper: timer callback threw: boom from a timer')
        self.assertEqual(await c.ping_pong(), {'pong': 1})
        self.server.assert_alive()

    async def test_a_timer_destroyed_inside_its_own_callback_fires_once(self):
        c = await self.connect('stop')
        await c.send_text('{"wrapper-stop-inside":1}')
        self.assertEqual(await c.recv_json(), {'stopped': 1})
        self.assertEqual(await c.recv_json(), {'after': 1})
        await c.expect_nothing(0.2)


class WrapperInitTest(unittest.TestCase):
    """How the wrapper maps what a plugin's init throws to duetd's exit code."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='duet-wrapper-')
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def run_with(self, *options):
        args = ['--address', '127.0.0.1', '--port', '0', '--state-dir', os.path.join(self.tmp, 'state'),
                '--plugin', plugin('wrapper_plugin.so')]
        for option in options:
            args += ['--plugin-opt', 'test-wrapper.' + option]
        return run_duetd(args, timeout=30)

    def test_bad_values_exit_2_with_one_message_format(self):
        for option, expected in [
                ('number=11', "number must be a whole number from 1 to 10, not '11' "
                              "(--plugin-opt test-wrapper.number)"),
                ('number=+5', "number must be a whole number from 1 to 10, not '+5'"),
                ('delay=2s', "delay must be a duration from 0.001 to 1 seconds"),
                ('loud=maybe', "loud must be 'true' or 'yes' or 'on' or '1' or 'false' or 'no' or 'off' or '0', "
                               "not 'maybe'"),
                ('init=sometimes', "init must be 'ok' or 'environment' or 'runtime', not 'sometimes'")]:
            with self.subTest(option=option):
                proc = self.run_with(option)
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertIn(expected, proc.stderr)
                self.assertNotIn('listening on', proc.stderr)

    def test_a_failure_of_the_environment_in_init_exits_1(self):
        for option, expected in [('init=environment', 'the test says the environment failed'),
                                 ('init=runtime', 'the test throws a plain runtime_error')]:
            with self.subTest(option=option):
                proc = self.run_with(option)
                self.assertEqual(proc.returncode, 1, proc.stderr)
                self.assertIn(expected, proc.stderr)


class HeaderExampleTest(SharedServerTestCase):
    """The example in plugin.hpp's opening comment, extracted, built and loaded."""

    @classmethod
    def setUpClass(cls):
        cls.server_args = ['--plugin', plugin('header_example.so'), '--plugin-opt', 'greeter.delay=20ms']
        super().setUpClass()

    async def test_the_header_s_example_plugin_answers_after_its_delay(self):
        c = await self.connect('greet')
        await c.send_text('{"greet":1}')
        self.assertEqual(await c.recv_json(), {'greet': 'hello'})


class PluginLoadingTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='duet-plugin-')
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.web = os.path.join(self.tmp, 'web')
        os.makedirs(self.web)

    def base(self):
        return ['--address', '127.0.0.1', '--port', '0',
                '--state-dir', os.path.join(self.tmp, 'state'), '--web-root', self.web]

    def test_list_plugins_shows_pairing_and_the_test_echo_plugin(self):
        proc = run_duetd(['--list-plugins', '--plugin', plugin('echo_plugin.so')] + self.base())
        self.assertEqual(proc.returncode, 0, proc.stderr)
        lines = proc.stdout.splitlines()
        self.assertTrue(any(l.startswith('pairing ') for l in lines),
                        'no "pairing <version>" line in %r' % proc.stdout)
        self.assertTrue(any(l.startswith('test-echo ') for l in lines),
                        'no "test-echo <version>" line in %r' % proc.stdout)
        self.assertNotIn('listening on', proc.stderr)

    def test_list_plugins_without_the_echo_plugin_does_not_show_it(self):
        proc = run_duetd(['--list-plugins'] + self.base())
        self.assertEqual(proc.returncode, 0, proc.stderr)
        lines = proc.stdout.splitlines()
        self.assertTrue(any(l.startswith('pairing ') for l in lines), proc.stdout)
        self.assertFalse(any(l.startswith('test-echo ') for l in lines), proc.stdout)

    def test_a_plugin_built_for_another_abi_major_is_refused_naming_both_versions(self):
        path = plugin('wrong_abi_plugin.so')
        proc = run_duetd(self.base() + ['--plugin', path], timeout=30)
        self.assertNotEqual(proc.returncode, 0, 'duetd loaded an ABI 99 plugin')
        self.assertNotIn('listening on', proc.stderr)
        self.assertIn(path, proc.stderr)
        self.assertRegex(proc.stderr, r'\b99\b', 'the plugin ABI version is not named')
        self.assertRegex(proc.stderr, r'\b1\b', "duetd's own ABI version is not named")

    def test_a_missing_plugin_path_stops_duetd_with_a_message_naming_it(self):
        path = os.path.join(self.tmp, 'no_such_plugin.so')
        proc = run_duetd(self.base() + ['--plugin', path], timeout=30)
        self.assertNotEqual(proc.returncode, 0)
        self.assertNotIn('listening on', proc.stderr)
        self.assertIn(path, proc.stderr)

    def test_an_unknown_option_of_a_loaded_plugin_exits_2_naming_the_key(self):
        proc = run_duetd(self.base() + ['--plugin-opt', 'pairing.nosuchkey=1'], timeout=30)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn('nosuchkey', proc.stderr)

    def test_an_option_for_a_plugin_that_is_not_loaded_exits_2(self):
        proc = run_duetd(self.base() + ['--plugin-opt', 'nosuchplugin.x=1'], timeout=30)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn('nosuchplugin', proc.stderr)

    def test_a_bad_value_for_a_known_plugin_option_exits_2(self):
        proc = run_duetd(self.base() + ['--plugin-opt', 'pairing.takeover=sometimes'], timeout=30)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn('takeover', proc.stderr)

    def test_a_plugin_dir_loads_every_module_in_it(self):
        folder = os.path.join(self.tmp, 'plugins')
        os.makedirs(folder)
        shutil.copy(plugin('echo_plugin.so'), os.path.join(folder, 'echo_plugin.so'))
        with open(os.path.join(folder, 'README.txt'), 'w') as f:
            f.write('not a plugin: ignored because it does not end in .so')
        proc = run_duetd(['--list-plugins', '--plugin-dir', folder] + self.base())
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(any(l.startswith('test-echo ') for l in proc.stdout.splitlines()), proc.stdout)

    def test_without_default_plugins_only_the_named_ones_load(self):
        proc = run_duetd(['--list-plugins', '--no-default-plugins', '--plugin', plugin('echo_plugin.so')]
                         + self.base())
        self.assertEqual(proc.returncode, 0, proc.stderr)
        names = [l.split()[0] for l in proc.stdout.splitlines() if l and not l.startswith(' ')]
        self.assertEqual(names, ['test-echo'])

    def test_the_same_plugin_twice_is_refused(self):
        proc = run_duetd(self.base() + ['--plugin', plugin('echo_plugin.so'), '--plugin', plugin('echo_plugin.so')],
                         timeout=5)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn('already loaded', proc.stderr)


class PluginRejectTest(SharedServerTestCase):
    """A plugin that returns DUET_REJECT: duetd answers with the plugin's error."""

    @classmethod
    def setUpClass(cls):
        cls.server_args = ['--plugin', plugin('echo_plugin.so')]  # skips when the plugins were not built
        super().setUpClass()

    async def test_a_rejecting_plugin_s_code_and_message_reach_the_sender(self):
        c = await self.connect('rejected')
        await c.send_text('{"echo-fails":1}')
        reply = await c.recv_json()
        self.assertEqual(reply, {'error': {'code': 'echo-refused',
                                           'message': 'The echo plugin refuses this on purpose.'}})
        await c.send_text('{"echo":2}')
        self.assertEqual(await c.recv_json(), {'echo': 2})


if __name__ == '__main__':
    unittest.main()
