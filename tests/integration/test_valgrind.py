"""A whole call under valgrind: pairing, relay, a malformed message, a
static file, then SIGTERM. duetd must exit 0 with no memory error and no
leak (valgrind's --error-exitcode turns either into exit code 99).

Skipped when valgrind is not installed (tools/install-deps installs it), or
when duetd is a sanitizer build (valgrind cannot run those).
"""

import os
import shutil
import subprocess
import unittest

from duet_harness import DuetTestCase, Server, duetd_path, raw_request

VALGRIND = shutil.which('valgrind')


def is_sanitizer_build():
    out = subprocess.run(['ldd', duetd_path()], stdout=subprocess.PIPE, errors='replace').stdout
    return 'libasan' in out


@unittest.skipIf(VALGRIND is None, 'valgrind is not installed')
class ValgrindTest(DuetTestCase):

    def setUp(self):
        if is_sanitizer_build():
            self.skipTest('duetd is built with sanitizers; they run the same checks themselves')

    async def test_a_call_and_a_clean_shutdown_leave_no_leak_and_no_memory_error(self):
        web = os.path.join(os.path.dirname(duetd_path()), 'valgrind-web')
        os.makedirs(web, exist_ok=True)
        with open(os.path.join(web, 'index.html'), 'w') as f:
            f.write('<p>hello</p>')
        srv = Server(web_root=web, start_timeout=60,
                     wrapper=[VALGRIND, '-q', '--leak-check=full', '--show-leak-kinds=definite,indirect',
                              '--errors-for-leak-kinds=definite,indirect', '--error-exitcode=99'])
        # DUET_KEEP_PLUGINS_LOADED keeps module symbols readable in any report.
        os.environ['DUET_KEEP_PLUGINS_LOADED'] = '1'
        srv.start()
        self.server = srv
        try:
            a, b = await self.pair()
            sdp = '{"sdp":{"type":"offer","sdp":"v=0\\r\\n"},"remote":"%s"}' % a.name
            await b.send_text(sdp)
            self.assertEqual(await a.recv_text(), sdp)
            await a.send_text('{"broken":')
            self.assertError(await a.recv_json(), 'malformed')
            resp = raw_request(srv, b'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')
            self.assertEqual(resp.status, 200)
            rc = srv.stop(timeout=60)
            self.assertEqual(rc, 0, 'duetd under valgrind exited with %s:\n%s' % (rc, srv.log()))
            self.assertNotIn('definitely lost', srv.log())
        finally:
            srv.cleanup()


if __name__ == '__main__':
    unittest.main()
