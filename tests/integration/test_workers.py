"""duetd --workers N: a supervisor and N worker processes sharing one port.

Each test starts the real duetd with --workers and looks at what really
happens: which processes hold the accepted sockets (/proc), which process
answers /healthz (its "pid"), what each worker logs, and the exit codes.
A real redis-server runs for --cluster, which carries calls between
clients that landed on different workers.

Run: DUETD=build/core/duetd /usr/bin/python3 tests/integration/test_workers.py
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

from duet_harness import DuetTestCase, Server, eventually, raw_request, run_duetd

REDIS_SERVER = shutil.which('redis-server') or '/usr/bin/redis-server'
WORKER_STARTED_RE = re.compile(r'worker (\d+) started \(pid (\d+)\)')

redis = None  # the module's redis-server: (process, folder)


def setUpModule():
    global redis
    if not os.access(REDIS_SERVER, os.X_OK):
        raise unittest.SkipTest('redis-server is not installed (apt install redis-server)')
    folder = tempfile.mkdtemp(prefix='duet-redis-')
    sock = os.path.join(folder, 'redis.sock')
    proc = subprocess.Popen([REDIS_SERVER, '--port', '0', '--unixsocket', sock, '--save', '',
                             '--appendonly', 'no', '--daemonize', 'no'],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=folder)
    redis = (proc, folder)
    try:
        wait_until(lambda: os.path.exists(sock) or proc.poll() is not None, 10)
        if proc.poll() is not None:
            raise AssertionError('redis-server exited with %s at start' % proc.returncode)
    except BaseException:
        tearDownModule()
        raise


def tearDownModule():
    if redis is None:
        return
    proc, folder = redis
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    shutil.rmtree(folder, ignore_errors=True)


def wait_until(check, timeout):
    """For setUpModule, which has no event loop for eventually()."""
    import time
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError('redis-server did not make its socket within %d s' % timeout)
        time.sleep(0.02)


def cluster_args():
    return ['--cluster', 'unix://' + os.path.join(redis[1], 'redis.sock')]


def worker_pids(srv):
    """{index: pid} of the workers running now, from the supervisor's log
    (the last start of each index wins)."""
    pids = {}
    for index, pid in WORKER_STARTED_RE.findall(srv.log()):
        pids[int(index)] = int(pid)
    return pids


def listening_workers(srv):
    """The indexes of the workers that logged "listening on"."""
    return set(int(i) for i in re.findall(r'duetd w(\d+) info: listening on ', srv.log()))


def socket_inodes(pid):
    """The inodes of the sockets process pid holds."""
    inodes = set()
    fd_dir = '/proc/%d/fd' % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue  # closed meanwhile
        if target.startswith('socket:['):
            inodes.add(target[8:-1])
    return inodes


def tcp_sockets(port):
    """(remote port, state, inode) of every TCP socket on local port, from
    /proc/net/tcp and tcp6 (state '01' is established)."""
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if int(fields[1].rsplit(':', 1)[1], 16) == port:
                    yield int(fields[2].rsplit(':', 1)[1], 16), fields[3], fields[9]


def established_sockets(pid, port):
    """How many established TCP connections to local port this process holds."""
    inodes = socket_inodes(pid)
    return sum(1 for _, state, inode in tcp_sockets(port) if state == '01' and inode in inodes)


def worker_holding(pids, client_port, port):
    """The index of the worker whose accepted socket has the client's port
    on the far end, or None."""
    owner = {inode: index for index, pid in pids.items() for inode in socket_inodes(pid)}
    for remote_port, _, inode in tcp_sockets(port):
        if remote_port == client_port and inode in owner:
            return owner[inode]
    return None


def healthz_pid(srv):
    r = raw_request(srv, ('GET', '/healthz'))
    if r.status != 200:
        raise AssertionError('GET /healthz: %s %r' % (r.status, r.body[:200]))
    return json.loads(r.body)['pid']


def process_gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


class WorkersCase(DuetTestCase):
    """Each test runs its own supervisor with two workers."""

    workers = 2

    def start_workers(self, extra=()):
        srv = Server(extra_args=['--workers', str(self.workers)] + cluster_args() + list(extra))
        srv.__enter__()
        self.addCleanup(srv.cleanup)
        self.srv = srv
        return srv

    def current_server(self):
        return getattr(self, 'srv', None)

    async def ready(self, srv):
        """Waits until every worker listens; returns {index: pid}."""
        want = set(range(1, self.workers + 1))
        await eventually(lambda: listening_workers(srv) == want, what='every worker listening')
        return worker_pids(srv)

    def stop(self, srv):
        rc = srv.stop()
        self.assertEqual(rc, 0, 'the supervisor exited with %s on SIGTERM.\n%s' % (rc, srv.log()))


class ConnectionsTest(WorkersCase):

    async def test_many_websockets_land_on_both_workers(self):
        srv = self.start_workers()
        pids = await self.ready(srv)
        self.assertEqual(sorted(pids), [1, 2])
        self.assertNotIn(srv.pid, pids.values())
        clients = [await self.connect('c%d' % i) for i in range(24)]
        for c in clients:
            self.assertEqual(await c.ping_pong(), {'pong': 1})
        held = await eventually(
            lambda: (lambda n: n if sum(n.values()) == 24 else None)(
                {i: established_sockets(pid, srv.port) for i, pid in pids.items()}),
            what='all 24 WebSockets held by the workers')
        self.assertTrue(all(held[i] > 0 for i in pids), 'every worker holds some of the 24: %r' % held)
        self.assertEqual(established_sockets(srv.pid, srv.port), 0, 'the supervisor serves nothing')
        seen = set()
        await eventually(lambda: seen.add(healthz_pid(srv)) or seen == set(pids.values()),
                         what='/healthz answered by both workers')
        for c in clients:
            await c.close()
        self.stop(srv)

    async def test_the_development_certificate_is_made_once_for_all_workers(self):
        srv = self.start_workers()
        await self.ready(srv)
        log = srv.log()
        self.assertEqual(log.count('made a new self-signed development certificate'), 1, log)
        self.assertRegex(log, r'duetd warn: made a new self-signed development certificate')
        self.assertEqual(log.count('using the self-signed development certificate'), 2, log)
        self.stop(srv)

    async def test_each_worker_is_its_own_cluster_node(self):
        srv = self.start_workers(['--node-id', 'edge'])
        pids = await self.ready(srv)
        for index, pid in pids.items():
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                args = f.read().split(b'\0')
            self.assertIn(b'--worker-index', args)
            self.assertNotIn(b'--workers', args)
            # duetd names the node (host node_info); pairing's cluster uses that name.
            await eventually(lambda: 'cluster: node edge-w%d joined' % index in srv.log(),
                             what='worker %d joining the cluster as edge-w%d' % (index, index))
        self.stop(srv)


class CallsBetweenWorkersTest(WorkersCase):

    async def test_a_call_between_two_workers_works_like_one_on_a_single_worker(self):
        srv = self.start_workers()
        pids = await self.ready(srv)
        # Connect until each worker holds a client; the kernel spreads them by address.
        by_worker = {1: [], 2: []}
        for i in range(40):
            c = await self.connect('c%d' % i)
            await c.ping_pong()
            w = await eventually(lambda: worker_holding(pids, c.ws.local_address[1], srv.port),
                                 what='the worker holding client %d' % i)
            by_worker[w].append(c)
            if len(by_worker[1]) >= 2 and len(by_worker[2]) >= 2:
                break
        self.assertTrue(len(by_worker[1]) >= 2 and len(by_worker[2]) >= 2,
                        'both workers got clients: %r' % {k: len(v) for k, v in by_worker.items()})
        pairs = [(by_worker[1][0], by_worker[2][0]),   # across workers
                 (by_worker[2][1], by_worker[1][1])]   # across, the other way round
        for n, (a, b) in enumerate(pairs):
            ida, idb = 'wa%d-%d' % (n, os.getpid()), 'wb%d-%d' % (n, os.getpid())
            await a.open(ida, idb)
            await a.expect_nothing(0.5)
            await b.open(idb, ida)
            self.assertEqual(await a.recv_json(), {'start': 'answer'})
            self.assertEqual(await b.recv_json(), {'start': 'offer'})
            for k in range(20):
                await b.send_text('{"ice":{"k":%d},"remote":"%s"}' % (k, ida))
                await a.send_text('{"ice":{"k":%d},"remote":"%s"}' % (k, idb))
            for k in range(20):
                self.assertEqual(await a.recv_text(), '{"ice":{"k":%d},"remote":"%s"}' % (k, ida))
                self.assertEqual(await b.recv_text(), '{"ice":{"k":%d},"remote":"%s"}' % (k, idb))
            await b.close()
            self.assertEqual(await a.recv_json(), {'close': 1})
        self.stop(srv)


class SupervisionTest(WorkersCase):

    async def test_a_worker_killed_with_sigkill_is_replaced_and_serves(self):
        srv = self.start_workers()
        pids = await self.ready(srv)
        os.kill(pids[1], signal.SIGKILL)
        await eventually(lambda: worker_pids(srv)[1] != pids[1], what='a new worker 1')
        new_pid = worker_pids(srv)[1]
        self.assertRegex(srv.log(), r'worker 1 \(pid %d\) was killed by signal 9 .*starting it again in 1 s'
                         % pids[1])
        self.assertEqual(worker_pids(srv)[2], pids[2], 'worker 2 kept running')
        await eventually(lambda: healthz_pid(srv) == new_pid, what='/healthz answered by the new worker')
        srv.assert_alive()
        self.stop(srv)

    async def test_sigterm_to_the_supervisor_stops_every_worker_and_exits_0(self):
        srv = self.start_workers()
        pids = await self.ready(srv)
        c = await self.connect('held')
        self.assertEqual(await c.ping_pong(), {'pong': 1})
        self.assertEqual(srv.stop(signal.SIGTERM), 0, srv.log())
        for index, pid in pids.items():
            self.assertTrue(process_gone(pid), 'worker %d (pid %d) still runs' % (index, pid))
            self.assertIn('duetd w%d info: stopped' % index, srv.log())
        self.assertIn('all workers stopped', srv.log())
        code, _ = await c.expect_close()
        self.assertEqual(code, 1001)

    async def test_sigusr1_drains_every_worker_none_is_restarted_and_the_supervisor_exits_0(self):
        srv = self.start_workers(['--drain-timeout', '120'])
        pids = await self.ready(srv)
        held = await self.connect('held')
        self.assertEqual(await held.ping_pong(), {'pong': 1})
        os.kill(srv.pid, signal.SIGUSR1)
        for index in (1, 2):
            await eventually(lambda: 'duetd w%d info: SIGUSR1: draining' % index in srv.log(),
                             what='worker %d draining' % index)
        self.assertIn('SIGUSR1: draining 2 worker(s)', srv.log())
        # The worker without a connection is done; the one holding ours waits for it.
        await eventually(lambda: sum(process_gone(pid) for pid in pids.values()) == 1,
                         what='the idle worker gone')
        self.assertIsNone(srv.proc.poll(), 'the supervisor waits for the draining worker')
        self.assertEqual(await held.ping_pong(), {'pong': 1})
        await held.close()
        self.assertEqual(srv.wait(), 0, srv.log())
        for index, pid in pids.items():
            self.assertTrue(process_gone(pid), 'worker %d (pid %d) still runs' % (index, pid))
        self.assertNotIn('starting it again', srv.log())

    async def test_sighup_is_passed_on_to_every_worker(self):
        srv = self.start_workers()
        await self.ready(srv)
        os.kill(srv.pid, signal.SIGHUP)
        for index in (1, 2):
            await eventually(lambda: 'duetd w%d info: SIGHUP: telling plugins to reopen their files' % index
                             in srv.log(), what='worker %d reloading' % index)
        self.assertIn('SIGHUP: passing it on to 2 worker(s)', srv.log())
        self.stop(srv)

    async def test_a_usage_error_in_the_workers_stops_the_supervisor_with_exit_code_2(self):
        with tempfile.TemporaryDirectory() as state:
            proc = run_duetd(['--workers', '2'] + cluster_args() +
                             ['--port', '0', '--address', '127.0.0.1', '--state-dir', state,
                              '--plugin-opt', 'pairing.takeover=sometimes'], timeout=20)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn('restarting will not heal', proc.stderr)
        self.assertIn('pairing.takeover', proc.stderr)


class PortsTest(WorkersCase):

    async def test_a_lone_duetd_cannot_take_the_workers_port(self):
        srv = self.start_workers()
        await self.ready(srv)
        with tempfile.TemporaryDirectory() as state:
            proc = run_duetd(['--address', '127.0.0.1', '--port', str(srv.port), '--state-dir', state])
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn('Address already in use', proc.stderr)
        self.stop(srv)

    async def test_a_second_supervisor_on_the_same_port_fails_at_once(self):
        srv = self.start_workers()
        await self.ready(srv)
        with tempfile.TemporaryDirectory() as state:
            proc = run_duetd(['--workers', '2'] + cluster_args() +
                             ['--address', '127.0.0.1', '--port', str(srv.port), '--state-dir', state])
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn('another program uses this port', proc.stderr)
        self.assertNotIn('worker 1 started', proc.stderr)
        self.stop(srv)

    async def test_a_free_port_chosen_by_the_supervisor_is_shared_by_all_workers(self):
        srv = self.start_workers()
        await self.ready(srv)
        ports = set(int(p) for p in re.findall(r'duetd w\d info: listening on https://127\.0\.0\.1:(\d+)/', srv.log()))
        self.assertEqual(ports, {srv.port})
        self.stop(srv)


def two_free_ports():
    """A port P with P + 1 free too (for --admin-listen with two workers)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(('127.0.0.1', 0))
            port = a.getsockname()[1]
            if port >= 65535:
                continue
            try:
                with socket.socket() as b:
                    b.bind(('127.0.0.1', port + 1))
            except OSError:
                continue
            return port
    raise AssertionError('found no two free ports in a row')


class AdminPortTest(WorkersCase):

    async def test_each_worker_serves_health_on_its_own_admin_port(self):
        admin = two_free_ports()
        srv = self.start_workers(['--admin-listen', '127.0.0.1:%d' % admin])
        pids = await self.ready(srv)
        for index in (1, 2):
            self.assertIn('duetd w%d info: health and metrics on http://127.0.0.1:%d/' % (index, admin + index - 1),
                          srv.log())
            with socket.create_connection(('127.0.0.1', admin + index - 1), timeout=5) as s:
                s.sendall(b'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
                data = b''
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            body = data.split(b'\r\n\r\n', 1)[1]
            self.assertEqual(json.loads(body)['pid'], pids[index])
        self.stop(srv)

    def test_admin_ports_past_65535_are_refused(self):
        proc = run_duetd(['--workers', '2'] + cluster_args() + ['--admin-listen', '127.0.0.1:65535'])
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn('past 65535', proc.stderr)


class OneWorkerTest(WorkersCase):
    workers = 1

    async def test_one_worker_needs_no_cluster(self):
        srv = Server(extra_args=['--workers', '1'])
        srv.__enter__()
        self.addCleanup(srv.cleanup)
        self.srv = srv
        pids = await self.ready(srv)
        c = await self.connect('solo')
        self.assertEqual(await c.ping_pong(), {'pong': 1})
        self.assertEqual(healthz_pid(srv), pids[1])
        await c.close()
        self.stop(srv)


class CommandLineTest(unittest.TestCase):

    def test_more_than_one_worker_without_a_cluster_exits_2_and_says_why(self):
        proc = run_duetd(['--workers', '2', '--port', '0'])
        self.assertEqual(proc.returncode, 2, proc.stderr)
        # The pairing plugin refuses in each worker's init; the supervisor stops.
        self.assertIn('2 workers (--workers) need --cluster', proc.stderr)
        self.assertIn('shared Redis', proc.stderr)
        self.assertIn('a usage error', proc.stderr)
        self.assertNotIn('listening on', proc.stderr)

    def test_a_bad_number_of_workers_exits_2_and_says_what_is_allowed(self):
        for value in ('0', 'x', '257', '-1', '2.5', ''):
            proc = run_duetd(['--workers', value] + cluster_args())
            self.assertEqual(proc.returncode, 2, '--workers %r: %s' % (value, proc.stderr))
            self.assertIn('--workers', proc.stderr, value)
            if value:
                self.assertIn('from 1 to 256, or auto', proc.stderr, value)

    def test_auto_means_one_worker_per_cpu(self):
        # Without a cluster, auto is refused when it means more than one.
        proc = run_duetd(['--workers', 'auto', '--port', '0'])
        cpus = len(os.sched_getaffinity(0))
        if cpus > 1:
            self.assertEqual(proc.returncode, 2, proc.stderr)
            self.assertIn('%d workers (--workers) need --cluster' % cpus, proc.stderr)
        else:
            self.skipTest('one CPU: auto means one worker, which needs no cluster')

    def test_help_explains_workers_and_hides_the_worker_index(self):
        proc = run_duetd(['--help'])
        self.assertEqual(proc.returncode, 0)
        self.assertIn('--workers N|auto', proc.stdout)
        self.assertIn('--cluster URL', proc.stdout)
        self.assertNotIn('--worker-index', proc.stdout)


if __name__ == '__main__':
    unittest.main(verbosity=2)
