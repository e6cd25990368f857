"""A Redis for the cluster tests (issue 12), and N duetd nodes sharing it.

    with RedisServer() as redis:                       # unix socket
        with Cluster(3, redis) as cluster:             # 3 duetd --cluster unix://...
            a = await Client.connect(cluster.nodes[0]) ...

    RedisServer(tcp=True, password='s3cret')           # 127.0.0.1:PORT with requirepass

Debian's /usr/bin/redis-server runs in the foreground (--daemonize no) with
no persistence (--save '' --appendonly no), in its own temporary folder; it
is stopped, killed and restarted by the PID we started, never by name. A
restart reuses the same socket path or TCP port, so duetd nodes that keep
their --cluster URL find it again (the outage test).

Readiness is checked with redis-cli (Debian's redis-tools, a dependency of
redis-server) when it is installed, else with a PING over a raw socket.
"""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from duet_harness import Server, STOP_TIMEOUT, run_duetd, stop_checked

REDIS_SERVER = os.environ.get('REDIS_SERVER', '/usr/bin/redis-server')
REDIS_CLI = shutil.which('redis-cli')
REDIS_START_TIMEOUT = 10.0


def require_redis(redis_server=None):
    """Skips the calling test (class) when redis-server (default
    REDIS_SERVER) is not installed."""
    exe = redis_server or REDIS_SERVER
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        raise unittest.SkipTest('%s is missing: apt-get install redis-server '
                                '(tools/install-deps installs it)' % exe)


def free_tcp_port():
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _resp(*args):
    out = b'*%d\r\n' % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b'$%d\r\n%s\r\n' % (len(a), a)
    return out


class RedisServer:
    """One redis-server process of ours: a unix socket (default) or, with
    tcp=True, a free loopback TCP port; requirepass when password is given.

    url: what duetd's --cluster takes (unix:///PATH or redis://127.0.0.1:PORT,
    never with the password: give that with --cluster-password-file, see
    password_file(), or build url_with_password()). redis_server: the binary
    (default REDIS_SERVER: $REDIS_SERVER or /usr/bin/redis-server)."""

    def __init__(self, tcp=False, password=None, extra_args=(), redis_server=None):
        require_redis(redis_server)
        self.exe = redis_server or REDIS_SERVER
        self.tcp = tcp
        self.password = password
        self.extra_args = list(extra_args)
        self.dir = tempfile.mkdtemp(prefix='duet-redis-')
        self.socket_path = os.path.join(self.dir, 'redis.sock')
        self.port = free_tcp_port() if tcp else 0
        self.logpath = os.path.join(self.dir, 'redis.log')
        self.proc = None
        self.starts = 0

    # ---- addresses ----------------------------------------------------------

    @property
    def url(self):
        if self.tcp:
            return 'redis://127.0.0.1:%d' % self.port
        return 'unix://' + self.socket_path

    def url_with_password(self, password=None, db=None):
        """redis://:PASSWORD@127.0.0.1:PORT[/DB] (TCP only)."""
        assert self.tcp, 'a password in the URL is for redis:// (TCP) URLs'
        url = 'redis://:%s@127.0.0.1:%d' % (password if password is not None else self.password, self.port)
        return url + ('/%d' % db if db is not None else '')

    def password_file(self, password=None, name='redis-password'):
        """A file holding the password (and a newline, as editors leave it),
        mode 0600, for --cluster-password-file."""
        path = os.path.join(self.dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write((password if password is not None else self.password) + '\n')
        return path

    # ---- lifecycle ------------------------------------------------------------

    def command(self):
        cmd = [self.exe, '--port', str(self.port), '--save', '', '--appendonly', 'no',
               '--daemonize', 'no', '--dir', self.dir, '--logfile', self.logpath,
               '--protected-mode', 'no' if not self.tcp else 'yes']
        if self.tcp:
            cmd += ['--bind', '127.0.0.1']
        else:
            cmd += ['--unixsocket', self.socket_path, '--unixsocketperm', '700']
        if self.password:
            cmd += ['--requirepass', self.password]
        return cmd + self.extra_args

    def start(self):
        if self.alive():
            return self
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.starts += 1
        deadline = time.monotonic() + REDIS_START_TIMEOUT
        while not self.ping():
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors='replace')
                raise AssertionError('redis-server exited with %s before answering PING.\n'
                                     'command: %s\nstderr: %s\nlog:\n%s'
                                     % (self.proc.returncode, self.command(), err, self.log()))
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError('redis-server did not answer PING within %.0f s.\nlog:\n%s'
                                     % (REDIS_START_TIMEOUT, self.log()))
            time.sleep(0.02)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Stops our redis-server (by its PID) and waits for it; SIGKILL if it
        lingers. Returns its exit code (None if it was not running)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        with contextlib.suppress(Exception):
            self.proc.stderr.close()
        return self.proc.returncode

    def kill(self):
        """SIGKILL: Redis vanishes without closing anything politely."""
        return self.stop(signal.SIGKILL)

    def restart(self):
        """Starts it again on the same socket path or TCP port (empty: no
        persistence, as after a real crash of a cache-only Redis)."""
        self.stop()
        # A TCP port in TIME_WAIT is fine for redis (it sets SO_REUSEADDR).
        return self.start()

    def cleanup(self):
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc):
        self.cleanup()
        return False

    # ---- inspection -----------------------------------------------------------

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.logpath, errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def ping(self, timeout=1.0):
        """True when Redis answers PING (after AUTH, when it has a password)."""
        if not self.alive():
            return False
        if REDIS_CLI:
            try:
                out = subprocess.run(self.cli_command('PING'), stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, timeout=timeout + 2).stdout
            except subprocess.TimeoutExpired:
                return False
            return out.strip() == b'PONG'
        return self._raw_ping(timeout)

    def cli_command(self, *args):
        cmd = [REDIS_CLI]
        cmd += ['-h', '127.0.0.1', '-p', str(self.port)] if self.tcp else ['-s', self.socket_path]
        if self.password:
            cmd += ['--no-auth-warning', '-a', self.password]
        return cmd + list(args)

    def cli(self, *args, timeout=5.0):
        """Runs one command with redis-cli; returns its stdout as text."""
        if not REDIS_CLI:
            raise unittest.SkipTest('redis-cli is not installed (package redis-tools)')
        p = subprocess.run(self.cli_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, errors='replace')
        if p.returncode != 0:
            raise AssertionError('redis-cli %s failed: %s' % (args, p.stderr))
        return p.stdout

    def place(self, peer_id):
        """The place the cluster holds for peer_id in Redis (the "place" of
        its record, key duet:id:ID), or None while it has none (no record
        yet, or a tombstone)."""
        import json
        text = self.cli('GET', 'duet:id:' + peer_id).strip()
        if not text:
            return None
        try:
            return json.loads(text).get('place')
        except ValueError:
            return None

    def _raw_ping(self, timeout):
        try:
            if self.tcp:
                s = socket.create_connection(('127.0.0.1', self.port), timeout=timeout)
            else:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(timeout)
                s.connect(self.socket_path)
        except OSError:
            return False
        with s:
            try:
                req = (_resp('AUTH', self.password) if self.password else b'') + _resp('PING')
                s.sendall(req)
                buf = b''
                want = 2 if self.password else 1
                while buf.count(b'\r\n') < want:
                    data = s.recv(4096)
                    if not data:
                        return False
                    buf += data
                return buf.rstrip().endswith(b'+PONG')
            except OSError:
                return False

    def cpu_seconds(self):
        """utime + stime of redis-server so far (for the benchmark)."""
        with open('/proc/%d/stat' % self.pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


# ---------------------------------------------------------------------------
# duetd nodes
# ---------------------------------------------------------------------------

NO_CLUSTER_HINT = (
    'this duetd does not know --cluster: the server side of issue 12 (Redis cluster) is '
    'missing from this build, so the cluster tests cannot run against it')


_cluster_support = None


def require_cluster_support():
    """Fails (does not skip: the feature is part of duetd) with a clear
    message when the duetd under test has no --cluster option."""
    global _cluster_support
    if _cluster_support is None:
        help_text = run_duetd(['--help']).stdout
        _cluster_support = re.search(r'^\s*--cluster\b', help_text, re.M) is not None
    if not _cluster_support:
        raise AssertionError(NO_CLUSTER_HINT + ' (duetd --help lists no --cluster).')


def cluster_args(redis_or_url, node_id=None, password_file=None):
    """The duetd options that join a node to the cluster on that Redis."""
    url = redis_or_url if isinstance(redis_or_url, str) else redis_or_url.url
    args = ['--cluster', url]
    if password_file:
        args += ['--cluster-password-file', password_file]
    if node_id:
        args += ['--node-id', node_id]
    return args


def start_node(redis_or_url, node_id=None, extra_args=(), password_file=None, **server_kwargs):
    """One duetd joined to the cluster, started (a Server of duet_harness).
    A duetd without --cluster fails with a message that says so."""
    srv = Server(extra_args=cluster_args(redis_or_url, node_id, password_file) + list(extra_args),
                 **server_kwargs)
    try:
        return srv.__enter__()
    except AssertionError as e:
        text = str(e)
        if re.search(r'(not expected|unknown|unrecognized)[^\n]*--cluster', text, re.I):
            raise AssertionError(NO_CLUSTER_HINT + '.\n' + text) from None
        raise


class Cluster:
    """n duetd nodes on free ports, all with --cluster on the same Redis.

        with RedisServer() as redis, Cluster(3, redis, node_args=[...]) as c:
            c.nodes[0], c.nodes[1], ...   (Servers of duet_harness)

    node_args go to every node, per_node_args[i] to node i only. Node i has
    --node-id node-<i>. Leaving the block stops every node still running with
    SIGTERM and checks its exit code is 0 (a crash or a sanitizer report
    would show there); nodes killed by a test (kill_node) are only cleaned up.
    """

    def __init__(self, n, redis, node_args=(), per_node_args=None, password_file=None):
        self.n = n
        self.redis = redis
        self.node_args = list(node_args)
        self.per_node_args = per_node_args or [[] for _ in range(n)]
        self.password_file = password_file
        self.nodes = []
        self.killed = set()

    def start(self):
        require_cluster_support()
        for i in range(self.n):
            self.add_node(self.per_node_args[i] if i < len(self.per_node_args) else [])
        return self

    def add_node(self, extra_args=(), url=None, password_file=None):
        """Starts one more node (url: another --cluster URL for it than the
        Redis's own, e.g. with the password in it)."""
        require_cluster_support()
        i = len(self.nodes)
        node = start_node(url or self.redis, 'node-%d' % i, self.node_args + list(extra_args),
                          password_file=password_file or self.password_file)
        self.nodes.append(node)
        return node

    def kill_node(self, i, sig=signal.SIGKILL):
        """kill -9 of node i (by its PID); waits until it is gone."""
        node = self.nodes[i]
        node.proc.send_signal(sig)
        node.proc.wait(timeout=STOP_TIMEOUT)
        self.killed.add(i)
        return node

    def assert_alive(self):
        for i, node in enumerate(self.nodes):
            if i not in self.killed:
                node.assert_alive()

    def close(self):
        """For a test's tear-down: every node not killed must still run and
        exit 0 on SIGTERM; every node's files go, whatever happens."""
        try:
            self.assert_alive()
            self.stop()
        finally:
            for node in self.nodes:
                node.cleanup()

    def stop(self):
        errors = []
        for i, node in enumerate(self.nodes):
            if i in self.killed:
                node.cleanup()
                continue
            try:
                stop_checked(node)
            except AssertionError as e:
                errors.append('node-%d: %s' % (i, e))
        self.nodes = []
        if errors:
            raise AssertionError('\n'.join(errors))

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            for node in self.nodes:
                node.cleanup()
            raise

    def __exit__(self, *exc):
        if exc[0] is None:
            self.stop()
        else:
            for node in self.nodes:
                node.cleanup()
        return False
