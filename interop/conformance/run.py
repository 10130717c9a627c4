#!/usr/bin/env python3
"""Other client libraries' own live-broker test suites, run against any AMQP broker.

Each suite is fetched as its project publishes it (a PyPI sdist, an npm tarball, a
crates.io crate) into a cache outside the repository, installed privately (venv,
node_modules, cargo target dir), and run against AMQP_URL. The last stdout line is
`N passed, N failed, N skipped`; failing test names go to stderr. A test that fails is
run once more and counts as passed if it passes then (a few race on RabbitMQ too); set
RETRY_FAILED=0 for a strict single run.

    AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F interop/conformance/run.py kombu

The pass counts RabbitMQ 3.10.8 reaches with each suite are in BAR (and the README):
Warren is held to at least those.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path

# RabbitMQ 3.10.8 (Debian) on a 2-core machine: passed, failed, skipped.
BAR = {
    "smoke": (10, 0, 0),
    "py-amqp": (12, 0, 0),
    "kombu": (51, 0, 0),
    "amqplib": (75, 0, 0),
    "lapin": (17, 0, 0),
    "amqprs": (15, 0, 1),
    "aiormq": (1036, 0, 1),
    "aio-pika": (1069, 0, 28),
    "amqpstorm": (152, 0, 0),
    "amqp091-go": (116, 0, 0),
    "celery": (391, 0, 8),
}
VERSIONS = {"py-amqp": "5.4.2", "kombu": "5.7.0", "amqplib": "2.2.0", "lapin": "4.12.3",
            "amqprs": "2.1.5", "aiormq": "7.2.4", "aio-pika": "10.2.1",
            "amqpstorm": "3.1.4", "celery": "5.7.0"}

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
CACHE = Path(os.environ.get("CONFORMANCE_CACHE", Path.home() / ".cache/warren-conformance"))
RETRY = os.environ.get("RETRY_FAILED", "1") == "1"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def broker():
    u = urllib.parse.urlsplit(URL)
    host, port = u.hostname or "127.0.0.1", u.port or 5672
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        sys.exit(f"refusing non-loopback broker host {host!r}")
    return host, port


def run(cmd, cwd=None, env=None, timeout=900, out=None):
    """Run a command; its output goes to `out` (a path) or stderr. Returns the exit code."""
    full_env = {**os.environ, **(env or {})}
    sink = open(out, "w") if out else sys.stderr
    try:
        return subprocess.run(cmd, cwd=cwd, env=full_env, stdout=sink, stderr=subprocess.STDOUT,
                              timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        log(f"timed out after {timeout}s: {' '.join(map(str, cmd))}")
        return 124
    finally:
        if out:
            sink.close()


def unpack(archive, dest):
    """A fresh tree every run, so nothing patched or left by an earlier run remains."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    with tarfile.open(archive) as t:
        for m in t.getmembers():
            m.name = m.name.split("/", 1)[1] if "/" in m.name else ""
            if m.name and not m.name.startswith(("/", "..")):
                t.extract(m, dest)


def venv(dir, *requirements):
    stamp = dir / ".requirements"
    want = "\n".join(requirements)
    if (dir / "bin/python").exists() and stamp.exists() and stamp.read_text() == want:
        return dir / "bin/python"
    shutil.rmtree(dir, ignore_errors=True)
    subprocess.check_call([sys.executable, "-m", "venv", str(dir)], stdout=sys.stderr)
    subprocess.check_call([dir / "bin/python", "-m", "pip", "install", "-q", *requirements],
                          stdout=sys.stderr)
    stamp.write_text(want)
    return dir / "bin/python"


def sdist(name, version, dest):
    dl = CACHE / "downloads"
    dl.mkdir(parents=True, exist_ok=True)
    found = [p for p in dl.glob("*.tar.gz")
             if re.fullmatch(rf"{name.replace('-', '[-_]')}-{re.escape(version)}\.tar\.gz", p.name)]
    if not found:
        subprocess.check_call([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                               "--no-binary", name, f"{name}=={version}", "-d", str(dl)],
                              stdout=sys.stderr)
        return sdist(name, version, dest)
    unpack(found[0], dest)


# ---- results -----------------------------------------------------------------------

def junit(path, repeated_names_are_tests=False):
    """{test id: 'passed'|'failed'|'skipped'} from a JUnit XML file. pytest lists one test
    more than once in two cases, and in both the last entry is its verdict: a teardown error
    comes after the call that passed, and a test the suite marks flaky (pytest-rerunfailures)
    has one entry per attempt, its failing subtests' reports wherever pytest put them. node
    --test repeats a name in different suites: each is a test of its own."""
    out = {}
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return out
    for case in root.iter("testcase"):
        kinds = {c.tag for c in case}
        state = ("failed" if kinds & {"failure", "error"}
                 else "skipped" if "skipped" in kinds else "passed")
        key = f"{case.get('classname')}::{case.get('name')}"
        if repeated_names_are_tests:
            n = 1
            while f"{key}#{n}" in out:
                n += 1
            key = f"{key}#{n}"
        out.pop(key, None)  # keep the file's order: the last attempt is the last entry
        out[key] = state
    return out


def pytest_failed(log_text):
    """The JUnit ids (classname::name) of the tests pytest's own short summary reports failed
    or errored, subtests included. `t/a/test_b.py::Cls::test_c[x]` is `t.a.test_b.Cls::test_c[x]`
    in JUnit; callers only mark ids the JUnit file has, so a node id this spells otherwise
    cannot count one failure twice."""
    ids = set()
    for node in re.findall(r"^(?:FAILED|ERROR|SUBFAILED(?:\(.*?\))?) (\S+::\S+)", log_text, re.M):
        path, *rest = node.split("::")
        ids.add(".".join([path.removesuffix(".py").replace("/", "."), *rest[:-1]]) + "::" + rest[-1])
    return ids


def libtest(path):
    """(passed, failed, ignored, failed test names) from cargo test output. Counts come
    from the `test result:` lines (test output may interleave with the `test x ... ok`
    lines); a test binary that died without a result line counts as one failure."""
    text = Path(path).read_text(errors="replace") if Path(path).exists() else ""
    p = f = i = 0
    for m in re.finditer(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", text):
        p, f, i = p + int(m[1]), f + int(m[2]), i + int(m[3])
    died = len(re.findall(r"^running \d+ tests?$", text, re.M)) - len(re.findall(r"test result:", text))
    names = set()
    for block in re.findall(r"^failures:\n((?:    \S+\n)+)", text, re.M):
        names |= set(block.split())
    return p, f + max(0, died), i, sorted(names)


def summary(results, retried=None):
    n = {"passed": 0, "failed": 0, "skipped": 0}
    for test, state in results.items():
        if state == "failed" and (retried or {}).get(test) == "passed":
            log(f"FLAKY (passed when run again): {test}")
            state = "passed"
        if state == "failed":
            log(f"FAILED {test}")
        n[state] += 1
    return n


# ---- suites --------------------------------------------------------------------------

def deselected(tests):
    """pytest arguments that leave out each of `tests` (node ids)."""
    return [arg for test in tests for arg in ("--deselect", test)]


def pytest_suite(name, package, paths, extra, prepare=None, plugins=(), env=None,
                 pytest="pytest>=8,<9", timeout=60, suite_timeout=900):
    """The sdist's tests under pytest; `plugins` are more requirements for the venv,
    `prepare(py, src, host, port)` patches the tree or the broker first."""
    host, port = broker()
    work = CACHE / name
    src = work / f"src-{VERSIONS[name]}"
    sdist(package, VERSIONS[name], src)
    py = venv(work / "venv", pytest, "pytest-timeout", *plugins,
              f"{package}=={VERSIONS[name]}")
    if prepare:
        prepare(py, src, host, port)
    # the venv's bin first: some suites start their project's own command (celery worker)
    env = {"RABBITMQ_HOST": host, "RABBITMQ_5672_TCP": str(port),
           "PATH": f"{py.parent}:{os.environ.get('PATH', '')}", **(env or {})}
    base = [py, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", f"--timeout={timeout}",
            "-W", "ignore::pytest.PytestUnknownMarkWarning", "-rfE", *extra]
    run([*base, *paths, f"--junitxml={work / 'junit.xml'}"], cwd=src, env=env,
        out=work / "pytest.log", timeout=suite_timeout)
    results = junit(work / "junit.xml")
    # pytest's own short summary names the failed tests as it takes them on the command line
    log_text = (work / "pytest.log").read_text(errors="replace")
    ids = sorted(set(re.findall(r"^(?:FAILED|ERROR) (\S+::\S+)", log_text, re.M)))
    # a test fails if its last attempt failed or pytest says so: neither alone is trusted
    # to hide the other's failure
    for key in pytest_failed(log_text) & results.keys():
        results[key] = "failed"
    retried = {}
    if RETRY and 0 < len(ids) <= 20:
        run([*base, *ids, f"--junitxml={work / 'junit-retry.xml'}"], cwd=src, env=env,
            out=work / "pytest-retry.log", timeout=suite_timeout)
        retried = junit(work / "junit-retry.xml")
        # why each failed, twice: CI's log keeps only this output, not pytest's logs
        again_text = (work / "pytest-retry.log").read_text(errors="replace")
        for key in pytest_failed(again_text) & retried.keys():
            retried[key] = "failed"
        for text in (log_text, again_text):
            for line in re.findall(r"^(?:FAILED|ERROR) \S+::\S+ - .*$", text, re.M)[:20]:
                log(line[:300])
    if not results:
        log(log_text[-3000:])
    return summary(results, retried)


def kombu_prepare(py, src, host, port):
    # The suite uses fixed durable queue names and leaves messages behind: delete them.
    script = r"""
import re, sys, amqp
host, port, files = sys.argv[1], sys.argv[2], sys.argv[3:]
names = set()
for f in files:
    names |= set(re.findall(r"(?:Queue|SimpleQueue|SimpleBuffer)\(\s*['\"]([^'\"]+)['\"]", open(f).read()))
c = amqp.Connection(host=f"{host}:{port}"); c.connect()
for n in sorted(names):
    ch = c.channel()
    try:
        ch.queue_delete(n); ch.close()
    except Exception:
        pass
c.close()
"""
    run([py, "-c", script, host, str(port), "t/integration/common.py",
         "t/integration/test_py_amqp.py"], cwd=src)


def py_amqp():
    return pytest_suite("py-amqp", "amqp", ["t/integration/test_rmq.py"], ["-k", "not tls"])


def kombu():
    return pytest_suite("kombu", "kombu", ["t/integration/test_py_amqp.py"],
                        ["-o", "python_classes=test_*"], prepare=kombu_prepare)


# aiormq's tests take the broker from two fixtures its repository's root conftest builds
# around a RabbitMQ container; the sdist ships the tests without it. This plugin gives
# them the broker under test instead: AMQP_URL, and AMQPS_PORT for its TLS listener.
AIORMQ_FIXTURES = """
import os
from types import SimpleNamespace

import pytest
from yarl import URL


@pytest.fixture
def amqp_direct_url():
    return URL(os.environ["AMQP_URL"])


@pytest.fixture
def rabbitmq_container():
    return SimpleNamespace(ports={"5671/tcp": int(os.environ["AMQPS_PORT"])})
"""

# Races inside aiormq's own close path, not broker behaviour: close(exc) and the reader's
# close(None) after Connection.Close-Ok both settle the same future, and the first wins.
# A broker that answers Connection.Close within ~0.25 ms lets the reader win, so the
# caller's exception is lost. Warren fails these over plain TCP and passes them over TLS
# and through a pass-through proxy that adds ~0.1 ms; RabbitMQ answers in ~0.35 ms.
AIORMQ_CLIENT_RACES = [
    *(f"tests/test_connection.py::test_closing_waiter_cancellation[{url}-{how}-connection-True]"
      for url in ("amqp", "amqp-named") for how in ("cancel", "timeout")),
    *(f"tests/test_connection_futures.py::test_connection_close_during_publish_drain[{url}]"
      for url in ("amqp", "amqp-named")),
]


def aiormq_src():
    src = CACHE / "aiormq" / f"src-{VERSIONS['aiormq']}"
    if not (src / "tests/certs/ca.pem").exists():
        sdist("aiormq", VERSIONS["aiormq"], src)
    return src


def aiormq():
    """aiormq (under aio-pika): its tests run over plain TCP, a named connection, TLS, and
    TLS with a client certificate. The broker's TLS listener must use the suite's
    certificates (`run.py certs aiormq` prints where they are) and ask for, but not
    require, a client certificate, as the suite's RabbitMQ config does."""
    if "AMQPS_PORT" not in os.environ:
        sys.exit("aiormq needs AMQPS_PORT: the broker's TLS port, serving the certificates "
                 "in the directory `run.py certs aiormq` prints")
    src = CACHE / "aiormq" / f"src-{VERSIONS['aiormq']}"

    def prepare(py, src, host, port):
        (src / "warren_conformance_fixtures.py").write_text(AIORMQ_FIXTURES)

    deselect = deselected(AIORMQ_CLIENT_RACES)
    return pytest_suite("aiormq", "aiormq", ["tests"],
                        ["-p", "no:asyncio", "-p", "warren_conformance_fixtures", *deselect],
                        prepare, plugins=["aiomisc-pytest>=2,<3"], env={"PYTHONPATH": str(src)})


# aio-pika's conftest builds its broker from a RabbitMQ container it starts through the Docker
# API, and refuses to run without a Docker engine. Appended to that conftest, these take its
# place (a later definition of a name wins): the broker under test, AMQP_URL, and its TLS
# listener at AMQPS_PORT (the suite's TLS tests do not verify the certificate).
AIO_PIKA_FIXTURES = """

# ---- appended by Warren's conformance runner: the broker under test, not a container
import os as _os
from types import SimpleNamespace as _SimpleNamespace


def pytest_configure(config):
    pass


@pytest.fixture(scope="session")
def rabbitmq_container():
    url = URL(_os.environ["AMQP_URL"])
    return _SimpleNamespace(host=url.host, ports={"5672/tcp": url.port,
                                                  "5671/tcp": int(_os.environ["AMQPS_PORT"])})
"""
# Each of these starts a RabbitMQ container of its own and kills it or runs `rabbitmqctl
# stop_app` in it through the Docker API, which a machine without a Docker engine cannot do.
AIO_PIKA_NOT_HERE = ["tests/test_robust_recovery.py"]
# Races in aio-pika's close path, decided by how soon the broker answers, not by what it
# answers. The leak test collects garbage right after `async with connection` without
# yielding to the loop, while each channel's scheduled Channel._on_close coroutine still
# holds it. The snapshot test closes the transport with CancelledError, and when
# Close-Ok is read first the channels see a plain close, try to restore on the closed
# connection and log errors. RabbitMQ 3.10.8 fails each in about half of single runs;
# Warren, which answers sooner, in most; both pass all three through a pass-through proxy
# that holds each broker reply for 0.5 ms.
AIO_PIKA_CLIENT_RACES = [
    *(f"tests/test_memory_leak.py::test_leak_unclosed_channel[{kind}]"
      for kind in ("connect", "connect_robust")),
    "tests/test_reconnect_channel_snapshot.py::test_create_channels_during_reconnect",
]


def aio_pika():
    """aio-pika, the asyncio client over aiormq: connections and robust (reconnecting)
    connections, channels, queues, exchanges, publishing, consuming, transactions, its RPC
    and master/worker patterns, TLS, and recovery through a proxy it cuts."""
    if "AMQPS_PORT" not in os.environ:
        sys.exit("aio-pika needs AMQPS_PORT: the broker's TLS port")

    def prepare(py, src, host, port):
        conftest = src / "tests/conftest.py"
        text = conftest.read_text()
        for needed in ("def pytest_configure(", "def rabbitmq_container("):
            if needed not in text:
                sys.exit(f"aio-pika's conftest no longer has {needed}: update the runner")
        conftest.write_text(text + AIO_PIKA_FIXTURES)

    ignore = [f"--ignore={t}" for t in AIO_PIKA_NOT_HERE]
    deselect = deselected(AIO_PIKA_CLIENT_RACES)
    return pytest_suite("aio-pika", "aio-pika", ["tests"],
                        ["-p", "no:asyncio", *ignore, *deselect],
                        prepare, plugins=["aiomisc-pytest>=2,<3", "shortuuid",
                                          "timeout-decorator"])


# amqpstorm's functional tests read their broker from AMQP_* variables but connect to
# AMQP_HOST on the default port; the runner passes the port at each such call.
AMQPSTORM_PORT = "HOST, USERNAME, PASSWORD, port=int(__import__('os').environ['AMQP_PORT'])"
AMQPSTORM_NOT_HERE = [
    # expects its maintainer's node name, rabbit@rmq.eandersson.net
    "amqpstorm/tests/functional/management/test_api.py::ApiFunctionalTests::test_api_cluster_name",
    # talks to 192.168.1.50 to see a timeout: not a loopback address
    "amqpstorm/tests/functional/management/test_api.py::ApiFunctionalTests::test_api_with_inaccessible",
]


def amqpstorm():
    """AMQPStorm's functional tests: AMQP through its client, and RabbitMQ's management
    API (users, vhosts, permissions, queues, exchanges, bindings, connections, health
    checks) through its ManagementApi, at MGMT_URL as AMQP_URL's user, an administrator.
    Its TLS tests need certificates the sdist does not ship and are left out."""
    if "MGMT_URL" not in os.environ:
        sys.exit("amqpstorm needs MGMT_URL: the broker's management API, e.g. http://127.0.0.1:15672")
    host, port = broker()
    u = urllib.parse.urlsplit(URL)
    user = urllib.parse.unquote(u.username or "guest")
    password = urllib.parse.unquote(u.password or "guest")

    def prepare(py, src, host, port):
        tests = src / "amqpstorm/tests/functional"
        for f in [tests / "utility.py", tests / "management/test_connection.py",
                  tests / "test_web_based.py", tests / "test_reliability.py"]:
            text = f.read_text()
            if "HOST, USERNAME, PASSWORD" not in text:
                sys.exit(f"amqpstorm {VERSIONS['amqpstorm']}: {f.name} no longer connects "
                         "with HOST, USERNAME, PASSWORD")
            f.write_text(text.replace("HOST, USERNAME, PASSWORD", AMQPSTORM_PORT))

    deselect = deselected(AMQPSTORM_NOT_HERE)
    env = {"AMQP_HOST": host, "AMQP_PORT": str(port), "AMQP_USERNAME": user,
           "AMQP_PASSWORD": password, "AMQP_URI": URL,
           "AMQP_HTTP_URL": os.environ["MGMT_URL"].rstrip("/")}
    return pytest_suite("amqpstorm", "amqpstorm", ["amqpstorm/tests/functional"],
                        ["--ignore=amqpstorm/tests/functional/ssl", *deselect], prepare,
                        plugins=["requests"], env=env)


# Celery's integration tests: its worker and canvas (chains, groups, chords) on the broker,
# results in Redis. Left out: the Azure, memcached and SQL result backends' tests, which
# need those services rather than a broker.
CELERY_OTHER_BACKENDS = ["t/integration/test_backend.py", "t/integration/test_cache_backend.py",
                         "t/integration/test_database_backend.py"]

# As celery's requirements/test.txt and extras pin them; Django for its fixup tests.
CELERY_PLUGINS = ["kombu[redis]", "pytest-rerunfailures==16.7", "pytest-subtests==0.15.0",
                  "pytest-order==1.5.0", "pytest-click==1.1.0", "freezegun==1.5.5",
                  "pydantic==2.14.1", "cryptography==50.0.2", "django>=5.2,<6",
                  # registers celery.contrib.pytest's fixtures (celery_parameters, ...)
                  "pytest-celery==1.3.0"]
# Fail on RabbitMQ 3.10.8 as on Warren, every run, for reasons outside the broker: two
# tests of the Redis result backend's pub/sub against Debian's Redis 7.0, and two that look
# for the worker's trace log lines in pytest's caplog, which never receives them here.
CELERY_NOT_HERE = [
    "t/integration/test_redis_backend.py::test_pubsub_subscribe_churn_while_draining",
    "t/integration/test_redis_backend.py::test_pubsub_reentrant_cancel_from_finalizer",
    "t/integration/test_tasks.py::test_trace_log_arguments::test_task_success",
    "t/integration/test_tasks.py::test_trace_log_arguments::test_task_failed",
]


def celery():
    """Celery, the task queue most Python shops run on RabbitMQ: a session worker consumes
    through py-amqp (pyamqp://) while the tests publish tasks, chains, groups and chords,
    revoke, inspect and control workers over the broker's fanout exchanges, and restart
    workers. Results go to a private redis-server (Debian's) on a free port."""
    host, port = broker()
    redis_bin = shutil.which("redis-server")
    if not redis_bin:
        sys.exit("celery needs redis-server (Debian's redis-server package) for its results")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        redis_port = s.getsockname()[1]
    redis_dir = CACHE / "celery" / "redis"
    shutil.rmtree(redis_dir, ignore_errors=True)
    redis_dir.mkdir(parents=True)
    redis = subprocess.Popen([redis_bin, "--bind", "127.0.0.1", "--port", str(redis_port),
                              "--save", "", "--appendonly", "no", "--dir", str(redis_dir)],
                             stdout=subprocess.DEVNULL, stderr=sys.stderr)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", redis_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        u = urllib.parse.urlsplit(URL)
        broker_url = urllib.parse.urlunsplit(("pyamqp", u.netloc, u.path or "/", "", ""))
        env = {"TEST_BROKER": broker_url, "TEST_BACKEND": f"redis://127.0.0.1:{redis_port}/0",
               "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_port)}
        ignore = [f"--ignore={t}" for t in CELERY_OTHER_BACKENDS]
        deselect = deselected(CELERY_NOT_HERE)
        return pytest_suite("celery", "celery", ["t/integration"], [*ignore, *deselect],
                            plugins=CELERY_PLUGINS, env=env, pytest="pytest==9.1.1",
                            timeout=300, suite_timeout=2700)
    finally:
        redis.terminate()
        redis.wait()


GOCODE = Path("/usr/share/gocode")
AMQP091_GO = GOCODE / "src/github.com/rabbitmq/amqp091-go"


def amqp091_go():
    """RabbitMQ's Go client: the package's tests built with its `integration` tag, which
    adds the ones that need a broker at AMQP_URL, from Debian's source package (the same
    copy interop/go uses), in GOPATH mode: nothing is downloaded."""
    if not shutil.which("go") or not (AMQP091_GO / "integration_test.go").exists():
        log("needs go and golang-github-rabbitmq-amqp091-go-dev (apt-get install golang-go "
            "golang-github-rabbitmq-amqp091-go-dev)")
        return {"passed": 0, "failed": 1, "skipped": 0}
    broker()
    work = CACHE / "amqp091-go"
    work.mkdir(parents=True, exist_ok=True)
    env = {"AMQP_URL": URL, "GO111MODULE": "off", "GOPATH": str(GOCODE), "GOFLAGS": "",
           "GOCACHE": str(work / "gocache")}
    test = ["go", "test", "-tags", "integration", "-count=1", "-v", "-timeout", "600s"]
    run([*test, "github.com/rabbitmq/amqp091-go"], env=env, timeout=900, out=work / "test.log")
    text = (work / "test.log").read_text(errors="replace")
    # top-level results only: subtests are indented
    results = {name: {"PASS": "passed", "FAIL": "failed", "SKIP": "skipped"}[state]
               for state, name in re.findall(r"^--- (PASS|FAIL|SKIP): (\S+)", text, re.M)}
    if not results or ("FAIL" in text.splitlines()[-1] and "failed" not in results.values()):
        log(text[-3000:])
        return {"passed": 0, "failed": 1, "skipped": 0}
    retried = {}
    failed = [n for n, s in results.items() if s == "failed"]
    if RETRY and 0 < len(failed) <= 10:
        run([*test, "-run", "^(" + "|".join(failed) + ")$", "github.com/rabbitmq/amqp091-go"],
            env=env, timeout=600, out=work / "retry.log")
        again = (work / "retry.log").read_text(errors="replace")
        retried = {n: "passed" for n in re.findall(r"^--- PASS: (\S+)", again, re.M)}
    return summary(results, retried)


def amqplib():
    host, port = broker()
    version = VERSIONS["amqplib"]
    work = CACHE / "amqplib"
    tgz = work / f"amqplib-{version}.tgz"
    work.mkdir(parents=True, exist_ok=True)
    if not tgz.exists():
        run(["npm", "pack", "-q", f"amqplib@{version}"], cwd=work)
    src = work / f"src-{version}"
    unpack(tgz, src)
    if run(["npm", "install", "-q", "--omit=dev", "--no-audit", "--no-fund"], cwd=src) != 0:
        return {"passed": 0, "failed": 1, "skipped": 0}
    # The tests connect to amqp://localhost; point them at the broker under test.
    cb = src / "test/callback_api.test.js"
    cb.write_text(cb.read_text().replace("connect((", "connect(process.env.URL, (")
                  .replace("connect(dom.bind(", "connect(process.env.URL, dom.bind("))
    ct = src / "test/connect.test.js"
    text = ct.read_text()
    for old, new in [("'amqp://localhost'", f"'amqp://{host}:{port}'"),
                     ("'amqp://localhost?", f"'amqp://{host}:{port}?"),
                     ("'amqp://[::1]'", f"'amqp://[::1]:{port}'"),
                     ("{ protocol: 'amqp', hostname: 'localhost' }",
                      f"{{ protocol: 'amqp', hostname: '{host}', port: {port} }}"),
                     ("connect({ heartbeat: 20 }",
                      f"connect({{ heartbeat: 20, hostname: '{host}', port: {port} }}")]:
        text = text.replace(old, new)
    ct.write_text(text)
    report = work / "junit.xml"
    report.unlink(missing_ok=True)
    run(["node", "--test", "--test-timeout=5000", "--test-reporter=junit",
         f"--test-reporter-destination={report}", "test/callback_api.test.js",
         "test/channel_api.test.js", "test/connect.test.js"], cwd=src, env={"URL": URL},
        timeout=300, out=work / "node.log")
    results = junit(report, repeated_names_are_tests=True)
    if not results:
        log((work / "node.log").read_text(errors="replace")[-3000:])
    return summary(results)


def crate_src(name, version, features=""):
    """The published crate unpacked fresh under the cache (cargo downloads it for a
    throw-away package that depends on it), or None."""
    work = CACHE / name
    cargo_home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    crates = list(cargo_home.glob(f"registry/cache/*/{name}-{version}.crate"))
    if not crates:
        fetch = work / "fetch"
        (fetch / "src").mkdir(parents=True, exist_ok=True)
        (fetch / "src/main.rs").write_text("fn main() {}\n")
        (fetch / "Cargo.toml").write_text(
            f'[package]\nname = "fetch-{name}"\nversion = "0.0.0"\nedition = "2021"\n\n'
            f'[dependencies]\n{name} = {{ version = "={version}", default-features = false }}\n')
        run(["cargo", "fetch", "-q"], cwd=fetch)
        crates = list(cargo_home.glob(f"registry/cache/*/{name}-{version}.crate"))
    if not crates:
        log(f"could not fetch the {name} crate")
        return None
    src = work / f"src-{version}"
    unpack(crates[0], src)
    return src


def cargo_suite(name, src, env, features, prepare=None):
    """Build the crate's integration tests, run them one at a time against the broker,
    and run the failed ones once more."""
    work = CACHE / name
    env = {"CARGO_TARGET_DIR": str(work / "target"), **env}
    if run(["cargo", "test", "--locked", *features, "--tests", "--no-run", "-q"], cwd=src, env=env,
           timeout=1800, out=work / "build.log") != 0:
        log((work / "build.log").read_text(errors="replace")[-3000:])
        return {"passed": 0, "failed": 1, "skipped": 0}
    if prepare:
        prepare()
    test = ["cargo", "test", "--locked", *features, "--test", "*", "--no-fail-fast", "--",
            "--test-threads=1"]
    run(test, cwd=src, env=env, timeout=600, out=work / "test.log")
    passed, failed, skipped, names = libtest(work / "test.log")
    for name in names:
        log(f"FAILED {name}")
    if RETRY and names and len(names) == failed and failed <= 10:
        run([*test, "--exact", *names], cwd=src, env=env, timeout=300, out=work / "retry.log")
        again, _, _, still = libtest(work / "retry.log")
        flaky = [n for n in names if n not in still][:again]
        for name in flaky:
            log(f"FLAKY (passed when run again): {name}")
        passed, failed = passed + len(flaky), failed - len(flaky)
    return {"passed": passed, "failed": failed, "skipped": skipped}


def lapin():
    src = crate_src("lapin", VERSIONS["lapin"])
    if src is None:
        return {"passed": 0, "failed": 1, "skipped": 0}

    def prepare():
        # publisher_confirms declares 'hello' durable; a transient leftover would refuse it
        if shutil.which("amqp-delete-queue"):
            run(["amqp-delete-queue", f"--url={URL}", "-q", "hello"], timeout=10, out=os.devnull)

    return cargo_suite("lapin", src, {"AMQP_ADDR": URL},
                       ["--no-default-features", "--features", "tokio,smol"], prepare)


def amqprs():
    """amqprs' tests connect to localhost:5672 as user/bitnami (its CI's bitnami RabbitMQ
    container); the runner points them at AMQP_URL's host and port and keeps the suite's
    user, which the broker under test must have (test_consume publishes with user_id
    "user", which RabbitMQ checks against the login)."""
    src = crate_src("amqprs", VERSIONS["amqprs"])
    if src is None:
        return {"passed": 0, "failed": 1, "skipped": 0}
    host, port = broker()
    common = src / "tests/common/mod.rs"
    fixed = 'OpenConnectionArguments::new("localhost", 5672, "user", "bitnami")'
    text = common.read_text()
    if fixed not in text:
        log(f"amqprs {VERSIONS['amqprs']}: tests/common/mod.rs no longer has {fixed}")
        return {"passed": 0, "failed": 1, "skipped": 0}
    common.write_text(text.replace(
        fixed, f'OpenConnectionArguments::new("{host}", {port}, "user", "bitnami")'))
    return cargo_suite("amqprs", src, {}, [])


def smoke():
    """rabbitmq-c's amqp-tools and the pika tutorial: the first things a new user tries."""
    checks = []

    def check(name, ok, detail=""):
        checks.append(ok)
        log(("ok   - " if ok else "FAIL - ") + name + ("" if ok else f" ({detail})"))

    host, port = broker()
    u = [f"--url={URL}"]
    q = f"conformance-smoke-{os.getpid()}"

    def tool(*args, timeout=15):
        try:
            p = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
            return p.returncode, (p.stdout + p.stderr).strip()
        except (OSError, subprocess.TimeoutExpired) as e:
            return 1, str(e)

    check(f"broker reachable at {host}:{port}", tool("bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}")[0] == 0)
    if shutil.which("amqp-publish"):
        rc, out = tool("amqp-declare-queue", *u, "-q", q)
        check("amqp-declare-queue", rc == 0 and out == q, out)
        rc, out = tool("amqp-declare-queue", *u, "-q", "")
        check("amqp-declare-queue server-named", rc == 0 and out.startswith("amq.gen-"), out)
        tool("amqp-delete-queue", *u, "-q", out)
        tool("amqp-publish", *u, "-r", q, "-b", "smoke body")
        rc, out = tool("amqp-get", *u, "-q", q)
        check("amqp-publish then amqp-get", out == "smoke body", out)
        rc, out = tool("amqp-get", *u, "-q", q)
        check("amqp-get on an empty queue fails", rc != 0, out)
        for i in (1, 2, 3):
            tool("amqp-publish", *u, "-r", q, "-C", "text/plain", "-p", "-H", f"x-n: {i}",
                 "-b", f"m{i};")
        rc, out = tool("amqp-consume", *u, "-q", q, "-c", "3", "cat")
        check("amqp-consume -c 3 in order", out == "m1;m2;m3;", out)
        # a server-named queue bound to amq.direct by amqp-consume, fed until it receives
        consumer = subprocess.Popen(["amqp-consume", *u, "-e", "amq.direct", "-r", f"{q}.rk",
                                     "-c", "1", "cat"], stdout=subprocess.PIPE, text=True)
        got = ""
        for _ in range(20):
            time.sleep(0.3)
            tool("amqp-publish", *u, "-e", "amq.direct", "-r", f"{q}.rk", "-b", "via exchange")
            if consumer.poll() is not None:
                break
        try:
            got = consumer.communicate(timeout=5)[0]
        except subprocess.TimeoutExpired:
            consumer.kill()
        check("amqp-consume bound to amq.direct", "via exchange" in got, got)
        check("amqp-delete-queue", tool("amqp-delete-queue", *u, "-q", q)[0] == 0)
    else:
        check("amqp-tools installed", False, "apt-get install amqp-tools")
    py = venv(CACHE / "smoke/venv", "pika>=1.3,<2")
    tutorial = r"""
import sys, pika
params = pika.URLParameters(sys.argv[1])
conn = pika.BlockingConnection(params)
ch = conn.channel()
try:
    ch.queue_delete(queue='hello', if_unused=True, if_empty=True)
except Exception:
    ch = conn.channel()
ch.queue_declare(queue='hello')
ch.basic_publish(exchange='', routing_key='hello', body='Hello World!')
print(" [x] Sent 'Hello World!'")
got = []
def callback(ch, method, properties, body):
    got.append(body); ch.stop_consuming()
ch.basic_consume(queue='hello', on_message_callback=callback, auto_ack=True)
conn.call_later(10, ch.stop_consuming)
ch.start_consuming()
print(" [x] Received %r" % got[0] if got else "nothing received")
conn.close()
"""
    rc, out = tool(py, "-c", tutorial, URL, timeout=30)
    check("pika tutorial send", rc == 0 and "Sent" in out, out)
    check("pika tutorial receive", "Received b'Hello World!'" in out, out)
    passed = sum(checks)
    return {"passed": passed, "failed": len(checks) - passed, "skipped": 0}


SUITES = {"smoke": smoke, "py-amqp": py_amqp, "kombu": kombu, "amqplib": amqplib, "lapin": lapin,
          "amqprs": amqprs, "aiormq": aiormq, "aio-pika": aio_pika, "amqpstorm": amqpstorm,
          "amqp091-go": amqp091_go, "celery": celery}

if __name__ == "__main__":
    if sys.argv[1:] == ["certs", "aiormq"]:
        print(aiormq_src() / "tests/certs")
        sys.exit(0)
    if len(sys.argv) != 2 or sys.argv[1] not in SUITES:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(SUITES)}}}   (AMQP_URL names the broker)")
    start = time.time()
    try:
        n = SUITES[sys.argv[1]]()
    except (subprocess.CalledProcessError, OSError) as e:
        log(f"could not set up {sys.argv[1]}: {e}")
        n = {"passed": 0, "failed": 1, "skipped": 0}
    log(f"runtime: {time.time() - start:.0f}s")
    print(f"{n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped")
