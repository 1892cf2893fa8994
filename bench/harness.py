"""The parts every benchmark uses: a development environment, server processes and gRPC clients."""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHUNK = 1024 * 1024
MESSAGE_LIMIT = CHUNK + 64 * 1024
SERVER_NAME = "niemphongd"
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
SPY_MODULES = ("/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so", "/usr/lib/x86_64-linux-gnu/pkcs11-spy.so")
ECHO_SERVICE = "/niemphong.bench.Echo"
MIB = 1024 * 1024

METADATA = pb.SealMetadata(
    level=pb.LEVEL_MAT,
    document=pb.DocumentMetadata(doc_number="1/BENCH", issued_on="2025-05-20", source_name="bench.pdf"),
)


SMALL_CLIENTS = 16


def station(index: int) -> str:
    """Return the identity name of scanning station ``index`` (1 to SMALL_CLIENTS)."""
    return f"scanner-{index:02d}"


def median(values: list[float]) -> float:
    return statistics.median(values)


# Environment -------------------------------------------------------------------


@dataclass
class BenchEnv:
    """A ``niemphong dev init`` folder tuned for benchmarking: many opens per grant."""

    root: Path
    config: dict = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.root / "niemphongd.toml"

    @property
    def socket(self) -> str:
        return self.config["server"]["unix_socket"]

    @property
    def spool_root(self) -> Path:
        return Path(self.config["spool"]["root"])

    def identity(self, name: str) -> Path:
        return self.root / "identities" / name

    def credentials(self, name: str) -> grpc.ChannelCredentials:
        identity = self.identity(name)
        return grpc.ssl_channel_credentials(
            root_certificates=(identity / "ca.pem").read_bytes(),
            private_key=(identity / "key.pem").read_bytes(),
            certificate_chain=(identity / "cert.pem").read_bytes(),
        )

    def channel(self, name: str, target: str | None = None) -> grpc.Channel:
        return grpc.secure_channel(target or f"unix:{self.socket}", self.credentials(name), options=[
            ("grpc.ssl_target_name_override", SERVER_NAME),
            ("grpc.max_receive_message_length", MESSAGE_LIMIT),
            ("grpc.max_send_message_length", MESSAGE_LIMIT),
        ])

    def write_config(self, name: str, *, module: str | None = None, sessions: int | None = None,
                     token_env: dict[str, str] | None = None) -> Path:
        """Write a variant of the configuration beside the original and return its path."""
        text = self.config_path.read_text()
        if module is not None:
            text = re.sub(r'(?m)^module = ".*"$', f'module = "{module}"', text)
        if sessions is not None:
            text = re.sub(r"(?m)^sessions = \d+$", f"sessions = {sessions}", text)
        if token_env:
            extra = "".join(f'{key} = "{value}"\n' for key, value in token_env.items())
            text = text.replace("[token.env]\n", "[token.env]\n" + extra)
        path = self.root / name
        path.write_text(text)
        return path


def make_env(root: Path) -> BenchEnv:
    result = subprocess.run(
        [str(BIN / "niemphong"), "dev", "init", str(root)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "LANG": "en_US.UTF-8"},
    )
    if result.returncode != 0:
        raise RuntimeError(f"niemphong dev init failed:\n{result.stdout}\n{result.stderr}")
    # One scanning station per concurrent client: the daemon allows each
    # identity only a few streams at once.
    for index in range(1, SMALL_CLIENTS + 1):
        result = subprocess.run(
            [str(BIN / "niemphong"), "dev", "add-identity", str(root), station(index), "--role", "scanner"],
            capture_output=True, text=True, timeout=60, env={**os.environ, "LANG": "en_US.UTF-8"},
        )
        if result.returncode != 0:
            raise RuntimeError(f"niemphong dev add-identity failed:\n{result.stdout}\n{result.stderr}")
    config_path = root / "niemphongd.toml"
    policy_path = root / "policy.toml"
    # The maximum opens per grant, so that repeated opens of one envelope need one grant.
    policy_path.write_text(re.sub(r"(?m)^grant_opens = \d+$", "grant_opens = 100", policy_path.read_text()))
    with config_path.open("rb") as handle:
        return BenchEnv(root, tomllib.load(handle))


# Processes ---------------------------------------------------------------------


class Server:
    """A server process (niemphongd, the slow-token host or the echo server) on the environment's socket."""

    def __init__(self, env: BenchEnv, command: list[str], log_path: Path) -> None:
        self.env = env
        self.command = command
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.ready_seconds = 0.0

    def start(self, *, health: bool = True) -> Server:
        if os.path.exists(self.env.socket):
            os.unlink(self.env.socket)
        log = self.log_path.open("ab")
        self.started_at = time.perf_counter()
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = self.started_at + 60
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command[0]} exited with {self.process.returncode}:\n{self.log()}")
            if os.path.exists(self.env.socket) and (self._serving() if health else self._echo_ready()):
                self.ready_seconds = time.perf_counter() - self.started_at
                return self
            time.sleep(0.005)
        raise RuntimeError(f"{self.command} did not become ready:\n{self.log()}")

    def _serving(self) -> bool:
        with self.env.channel("operator") as channel:
            try:
                response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            except grpc.RpcError:
                return False
        return response.status == health_pb2.HealthCheckResponse.SERVING

    def _echo_ready(self) -> bool:
        with self.env.channel("scanner") as channel:
            try:
                echo_unary(channel)(pb.SealRequest(chunk=b"x"), timeout=1)
            except grpc.RpcError:
                return False
        return True

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def memory_kib(self) -> dict[str, int]:
        """Return VmRSS and VmHWM (peak resident set) of the process, in KiB."""
        values = {}
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                name, _, rest = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    values[name] = int(rest.split()[0])
        return values

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def daemon(env: BenchEnv, logs: Path, config: Path | None = None) -> Server:
    return Server(env, [str(BIN / "niemphongd"), "--config", str(config or env.config_path)], logs / "niemphongd.log")


def slow_daemon(env: BenchEnv, logs: Path, config: Path, latency_ms: float, parallel: int) -> Server:
    command = [sys.executable, "-m", "bench.daemon_host", "--config", str(config),
               "--token-latency-ms", str(latency_ms), "--token-parallel", str(parallel)]
    return Server(env, command, logs / "niemphongd-slow.log")


def echo_server(env: BenchEnv, logs: Path) -> Server:
    pki = env.root / "pki"
    command = [sys.executable, "-m", "bench.echo_server", "--socket", env.socket, "--ca", str(pki / "ca.pem"),
               "--cert", str(pki / "server.pem"), "--key", str(pki / "server.key"),
               "--workers", str(env.config["server"].get("workers", 32))]
    return Server(env, command, logs / "echo.log")


# Clients -----------------------------------------------------------------------


def echo_stream(channel: grpc.Channel) -> Callable[..., Iterator[pb.SealResponse]]:
    return channel.stream_stream(f"{ECHO_SERVICE}/Stream", request_serializer=pb.SealRequest.SerializeToString,
                                 response_deserializer=pb.SealResponse.FromString)


def echo_unary(channel: grpc.Channel) -> Callable[..., pb.SealResponse]:
    return channel.unary_unary(f"{ECHO_SERVICE}/Unary", request_serializer=pb.SealRequest.SerializeToString,
                               response_deserializer=pb.SealResponse.FromString)


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def generated_chunks(total: int) -> Iterator[bytes]:
    """Yield ``total`` bytes of incompressible data without a file, for sizes larger than the page cache should hold."""
    block = os.urandom(CHUNK)
    sent = 0
    while sent < total:
        size = min(CHUNK, total - sent)
        yield block[:size]
        sent += size


def stream_seal(channel: grpc.Channel, chunks: Iterator[bytes], out: Path | None = None,
                timeout: float | None = None) -> int:
    """Seal a stream; return envelope bytes received. Writes the envelope to ``out`` when given."""
    def requests() -> Iterator[pb.SealRequest]:
        yield pb.SealRequest(metadata=METADATA)
        for chunk in chunks:
            yield pb.SealRequest(chunk=chunk)

    received = 0
    handle = out.open("wb") if out is not None else None
    try:
        for response in pb_grpc.EnvelopeServiceStub(channel).Seal(requests(), timeout=timeout):
            if response.WhichOneof("payload") == "chunk":
                received += len(response.chunk)
                if handle is not None:
                    handle.write(response.chunk)
    finally:
        if handle is not None:
            handle.close()
    return received


def stream_open(channel: grpc.Channel, chunks: Iterator[bytes]) -> int:
    def requests() -> Iterator[pb.OpenRequest]:
        yield pb.OpenRequest(start=pb.OpenStart())
        for chunk in chunks:
            yield pb.OpenRequest(chunk=chunk)

    received = 0
    for response in pb_grpc.EnvelopeServiceStub(channel).Open(requests()):
        if response.WhichOneof("payload") == "chunk":
            received += len(response.chunk)
    return received


def stream_echo(channel: grpc.Channel, chunks: Iterator[bytes]) -> int:
    def requests() -> Iterator[pb.SealRequest]:
        yield pb.SealRequest(metadata=METADATA)
        for chunk in chunks:
            yield pb.SealRequest(chunk=chunk)

    return sum(len(response.chunk) for response in echo_stream(channel)(requests()))


def grant(env: BenchEnv, artefact_id: str) -> None:
    with env.channel("viewer") as channel:
        request = pb_grpc.AccessServiceStub(channel).RequestAccess(
            pb.RequestAccessRequest(artefact_id=artefact_id, purpose="đo hiệu năng"), timeout=30)
    with env.channel("approver-1") as channel:
        pb_grpc.AccessServiceStub(channel).Approve(pb.ApproveRequest(request_id=request.request_id), timeout=30)


def timed(call: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def write_random_file(path: Path, size: int) -> None:
    block = os.urandom(4 * MIB)
    with path.open("wb") as handle:
        written = 0
        while written < size:
            part = block[: min(len(block), size - written)]
            handle.write(part)
            written += len(part)


# Many concurrent small calls ---------------------------------------------------


def small_call_worker(arguments: tuple[str, str, int, int, float, int]) -> tuple[int, list[float]]:
    """Run ``threads`` clients for ``seconds`` in this process; return calls made and their latencies.

    Runs in a child process so that the clients of both processes together
    are not limited by one interpreter's GIL. Client ``i`` connects as
    scanning station ``first_station + i``. Raises the first client's error.
    """
    import threading

    root, kind, first_station, threads, seconds, size = arguments
    with (Path(root) / "niemphongd.toml").open("rb") as handle:
        env = BenchEnv(Path(root), tomllib.load(handle))
    payload = os.urandom(size)
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    start_barrier = threading.Barrier(threads, timeout=60)

    def client(index: int) -> None:
        try:
            with env.channel(station(first_station + index)) as channel:
                if kind == "echo":
                    unary = echo_unary(channel)
                    call = lambda: unary(pb.SealRequest(chunk=payload), timeout=60)  # noqa: E731
                elif kind == "seal":
                    seal_small = pb_grpc.EnvelopeServiceStub(channel).SealSmall
                    request = pb.SealSmallRequest(metadata=METADATA, document=payload)
                    call = lambda: seal_small(request, timeout=60)  # noqa: E731
                else:
                    call = lambda: stream_seal(channel, iter([payload]), timeout=60)  # noqa: E731
                call()  # connect and warm up outside the measured window
                start_barrier.wait()
                end = time.perf_counter() + seconds
                while (now := time.perf_counter()) < end:
                    call()
                    done = time.perf_counter()
                    # A call still running at the end would inflate the rate
                    # by up to one call per client, so only those finished
                    # inside the window count.
                    if done <= end:
                        latencies[index].append(done - now)
        except BaseException as exc:
            errors.append(exc)
            start_barrier.abort()

    workers = [threading.Thread(target=client, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    failures = [error for error in errors if not isinstance(error, threading.BrokenBarrierError)]
    if failures or errors:
        raise RuntimeError(f"{len(errors)} of {threads} clients failed") from (failures or errors)[0]
    flat = [value for values in latencies for value in values]
    return len(flat), flat


def run_small_calls(env: BenchEnv, kind: str, clients: int, seconds: float, size: int,
                    processes: int = 2) -> dict[str, float]:
    """Measure calls per second and latency percentiles with ``clients`` concurrent clients.

    ``kind`` is "echo" (the unary echo server), "seal" (SealSmall) or
    "seal-stream" (a Seal stream of one chunk).
    """
    import multiprocessing

    if clients > SMALL_CLIENTS:
        raise ValueError(f"at most {SMALL_CLIENTS} clients, one per scanning station identity")
    per_process = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    first_stations = [1 + sum(per_process[:i]) for i in range(processes)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        results = pool.map(small_call_worker, [
            (str(env.root), kind, first, n, seconds, size) for first, n in zip(first_stations, per_process) if n
        ])
    calls = sum(count for count, _ in results)
    latencies = sorted(value for _, values in results for value in values)
    if not latencies:
        return {"per_second": 0.0, "p50_ms": 0.0, "p99_ms": 0.0}
    return {
        "per_second": calls / seconds,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def stream_seal_bytes(channel: grpc.Channel, data: bytes) -> bytes:
    """Seal ``data`` in one chunk and return the envelope."""
    out = bytearray()
    requests = iter([pb.SealRequest(metadata=METADATA), pb.SealRequest(chunk=data)])
    for response in pb_grpc.EnvelopeServiceStub(channel).Seal(requests):
        if response.WhichOneof("payload") == "chunk":
            out += response.chunk
    return bytes(out)
