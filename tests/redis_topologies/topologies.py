"""Real Redis topologies on loopback: Sentinel (master, replica, three sentinels),
a three-master Cluster, and a Redis behind TLS with a password.

Each has the interface of :class:`tests.support.RedisServer` (``url``,
``start()``, ``stop()``), so :class:`tests.support.WebStack` runs the suite on
it unchanged.  Every process is stopped by its own PID.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import subprocess
import time
from pathlib import Path

import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support import free_port, wait_for_port

PASSWORD = "topology-test-password"


def binary(name: str) -> str:
    """The path of a Debian Redis program, or a clear error naming the package."""
    found = shutil.which(name)
    if not found:
        package = {"redis-cli": "redis-tools", "redis-sentinel": "redis-sentinel"}.get(name, "redis-server")
        raise RuntimeError(f"{name} is not installed; `make test` installs it (apt-get install {package})")
    return found


def wait_until(condition, timeout: float, what: str):
    """Poll ``condition`` until it returns something true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except (redis.RedisError, OSError) as error:
            last = error
        time.sleep(0.1)
    raise TimeoutError(f"{what} within {timeout}s (last error: {last})")


class Processes:
    """Redis processes started by this test, each logging to its own file."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, argv: list[str], port: int) -> subprocess.Popen:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = open(self.directory / f"{name}.out", "ab")
        proc = subprocess.Popen(argv, cwd=self.directory, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(proc)
        wait_for_port(port, proc=proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []

    def logs(self) -> str:
        """Everything every process of this topology wrote."""
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.directory.glob("*.out")))


def server_args(port: int, directory: Path, *extra: str) -> list[str]:
    """A redis-server on ``127.0.0.1:port``, no persistence, with the test password."""
    return [
        binary("redis-server"),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory),
        "--save",
        "",
        "--appendonly",
        "no",
        "--requirepass",
        PASSWORD,
        "--masterauth",
        PASSWORD,
        *extra,
    ]


class SentinelTopology:
    """One master, one replica and three sentinels watching them as ``mymaster``."""

    SERVICE = "mymaster"

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.processes = Processes(self.directory)
        self.master_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]

    @property
    def url(self) -> str:
        nodes = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://:{PASSWORD}@{nodes}/{self.SERVICE}/0"

    def sentinel(self, index: int = 0) -> redis.Redis:
        """A direct connection to one sentinel (sentinels take no password)."""
        return redis.Redis(port=self.sentinel_ports[index], socket_timeout=2)

    def server(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=PASSWORD, socket_timeout=2)

    def master_port_now(self) -> int:
        """The master's port, as the first sentinel names it."""
        return int(self.sentinel().sentinel_get_master_addr_by_name(self.SERVICE)[1])

    def start(self) -> "SentinelTopology":
        self.processes.start("master", server_args(self.master_port, self.directory), self.master_port)
        replica = server_args(
            self.replica_port, self.directory, "--replicaof", "127.0.0.1", str(self.master_port)
        )
        self.processes.start("replica", replica, self.replica_port)
        for number, port in enumerate(self.sentinel_ports):
            config = self.directory / f"sentinel-{number}.conf"  # a sentinel rewrites its file
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
                f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel auth-pass {self.SERVICE} {PASSWORD}\n"
                # Long: a busy test machine must not look like a dead master.
                f"sentinel down-after-milliseconds {self.SERVICE} 10000\n"
                f"sentinel failover-timeout {self.SERVICE} 10000\n"
            )
            self.processes.start(f"sentinel-{number}", [binary("redis-sentinel"), str(config)], port)
        wait_until(self.settled, 60, "the sentinels did not see the replica and each other")
        return self

    def settled(self) -> bool:
        """Every sentinel knows the replica and the two other sentinels; the replica is in sync."""
        for index in range(3):
            state = self.sentinel(index).sentinel_master(self.SERVICE)
            if state["num-slaves"] < 1 or state["num-other-sentinels"] < 2:
                return False
        return self.in_sync()

    def in_sync(self) -> bool:
        """The replica has every write the master has (replication is asynchronous)."""
        master = self.server(self.master_port_now()).info("replication")
        replicas = [v for k, v in master.items() if k.startswith("slave") and isinstance(v, dict)]
        return bool(replicas) and all(
            r["state"] == "online" and r["offset"] == master["master_repl_offset"] for r in replicas
        )

    def failover(self) -> int:
        """``SENTINEL FAILOVER``; wait until the old replica is master and every sentinel says so.

        :return: the new master's port.
        """
        old = self.master_port_now()

        def asked() -> bool:
            # NOGOODSLAVE until the sentinel's latest look at the replica found it in sync.
            try:
                return bool(self.sentinel().execute_command("SENTINEL", "FAILOVER", self.SERVICE))
            except redis.ResponseError as error:
                if "NOGOODSLAVE" in str(error):
                    return False
                raise

        wait_until(asked, 30, "no sentinel accepted SENTINEL FAILOVER")
        new = self.replica_port if old == self.master_port else self.master_port

        def done() -> bool:
            names_new = all(
                int(self.sentinel(i).sentinel_get_master_addr_by_name(self.SERVICE)[1]) == new
                for i in range(3)
            )
            return names_new and self.server(new).info("replication")["role"] == "master"

        wait_until(done, 60, "the failover did not complete")
        return new

    def stop(self) -> None:
        self.processes.stop()


class ClusterTopology:
    """Three masters, no replicas, made with ``redis-cli --cluster create``."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.processes = Processes(self.directory)
        self.ports = [free_port() for _ in range(3)]

    @property
    def url(self) -> str:
        nodes = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        return f"redis+cluster://:{PASSWORD}@{nodes}"

    def start(self) -> "ClusterTopology":
        for port in self.ports:
            args = server_args(
                port,
                self.directory,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(self.directory / f"nodes-{port}.conf"),
                "--cluster-node-timeout",
                "5000",
            )
            self.processes.start(f"node-{port}", args, port)
        create = [binary("redis-cli"), "--cluster", "create"]
        create += [f"127.0.0.1:{port}" for port in self.ports] + ["--cluster-replicas", "0", "--cluster-yes"]
        subprocess.run(
            create,
            env={**os.environ, "REDISCLI_AUTH": PASSWORD},
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=60,
        )
        wait_until(self.ready, 60, "the cluster did not reach cluster_state:ok")
        return self

    def ready(self) -> bool:
        for port in self.ports:
            info = redis.Redis(port=port, password=PASSWORD, socket_timeout=2).cluster("info")
            if info.get("cluster_state") != "ok":
                return False
        return True

    def client(self) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.ports[0], password=PASSWORD)

    def keys(self, pattern: str) -> list[bytes]:
        """The keys matching ``pattern`` on every master (``KEYS`` answers for one node only)."""
        found = []
        for port in self.ports:
            found += redis.Redis(port=port, password=PASSWORD, socket_timeout=2).keys(pattern)
        return found

    def stop(self) -> None:
        self.processes.stop()


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate it signs for ``127.0.0.1`` and ``localhost``.

    :return: the CA's, the server certificate's and the server key's PEM files.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "topology test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    paths[2].chmod(0o600)
    return paths


class TlsRedis:
    """A Redis that speaks only TLS (``--port 0 --tls-port``) and wants a password."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.processes = Processes(self.directory)
        self.port = free_port()
        self.ca, self.cert, self.key = make_certificates(self.directory / "tls")

    @property
    def url(self) -> str:
        return f"rediss://:{PASSWORD}@127.0.0.1:{self.port}/0?ssl_ca_certs={self.ca}"

    def start(self) -> "TlsRedis":
        args = server_args(0, self.directory) + [
            "--tls-port",
            str(self.port),
            "--tls-cert-file",
            str(self.cert),
            "--tls-key-file",
            str(self.key),
            "--tls-ca-cert-file",
            str(self.ca),
            "--tls-auth-clients",
            "no",
        ]
        self.processes.start("tls", args, self.port)
        return self

    def stop(self) -> None:
        self.processes.stop()
