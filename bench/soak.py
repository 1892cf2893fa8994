#!/usr/bin/env python3
"""Soak test: many concurrent clients doing mixed work against one real niemphongd.

The script makes a throwaway development folder (``niemphong dev init``, a
SoftHSM2 token), gives every client its own scanner and viewer identity,
starts niemphongd and runs ``--clients`` threads for ``--seconds``. Each
client has its own gRPC channels and, at random, seals a document of 1 KiB
to 2 MiB, inspects an envelope, asks for access, has it approved and opens
the envelope (checking every byte), decides a document, reads the policy or
lists pending requests, over the unix socket or loopback TCP.

It passes when:

- no call failed (every error counts, there are no expected ones);
- the daemon's resident memory at the end (median of the last 10 s) is
  less than 10% above its highest level in the 10 s after the warm-up (a
  quarter of the run, at least 10 s);
- once every client has closed its channels, the daemon has no more open
  file descriptors than before the clients started;
- the metrics page shows no token session still in use and the configured
  number of sessions open.

``make soak`` runs 10 minutes with 32 clients; the test suite runs 60 s.
Traffic goes only to the loopback addresses of the daemon it starts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from niemphong.clients import devpki
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

BIN = Path(sys.executable).parent
CHUNK = 1024 * 1024
MESSAGE_LIMIT = CHUNK + 64 * 1024
MAX_MEMORY_GROWTH = 0.10
MIN_WARM_UP_SECONDS = 10.0
FD_SETTLE_SECONDS = 20.0
# Operation -> weight in the mix.
MIX = {"seal": 4, "inspect": 3, "access_and_open": 3, "decide": 2, "policy": 1, "pending": 1}


@dataclass
class Results:
    operations: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, operation: str) -> None:
        with self.lock:
            self.operations[operation] += 1

    def fail(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)


class Environment:
    """The development folder, its daemon and its addresses."""

    def __init__(self, root: Path, clients: int) -> None:
        self.root = root
        subprocess.run([str(BIN / "niemphong"), "dev", "init", str(root)], check=True, capture_output=True,
                       timeout=300)
        config_path = root / "niemphongd.toml"
        # Every client may stream at once; the daemon keeps 8 workers free of
        # streams for unary calls, so it needs that many more.
        text = config_path.read_text(encoding="utf-8")
        config_path.write_text(text.replace("[server]\n", f"[server]\nworkers = {clients + 16}\n", 1), encoding="utf-8")
        with config_path.open("rb") as handle:
            self.config = tomllib.load(handle)
        ca = devpki.load_ca(root / "pki")
        for index in range(clients):
            devpki.write_client_identity(root / "identities" / f"soak-scanner-{index}", f"soak-scanner-{index}", "scanner", ca)
            devpki.write_client_identity(root / "identities" / f"soak-viewer-{index}", f"soak-viewer-{index}", "viewer", ca)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = root / "niemphongd.log"

    def target(self, transport: str) -> str:
        server = self.config["server"]
        return f"unix:{server['unix_socket']}" if transport == "unix" else server["tcp"]

    def channel(self, identity: str, transport: str) -> grpc.Channel:
        folder = self.root / "identities" / identity
        credentials = grpc.ssl_channel_credentials(
            root_certificates=(folder / "ca.pem").read_bytes(),
            private_key=(folder / "key.pem").read_bytes(),
            certificate_chain=(folder / "cert.pem").read_bytes(),
        )
        return grpc.secure_channel(self.target(transport), credentials, options=[
            ("grpc.ssl_target_name_override", "niemphongd"),
            ("grpc.max_receive_message_length", MESSAGE_LIMIT),
            ("grpc.max_send_message_length", MESSAGE_LIMIT),
        ])

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([str(BIN / "niemphongd"), "--config", str(self.root / "niemphongd.toml")],
                                        stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"niemphongd exited with {self.process.returncode}; see {self.log_path}")
            with self.channel("operator", "unix") as channel:
                try:
                    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
                except grpc.RpcError:
                    status = None
            if status is not None and status.status == health_pb2.HealthCheckResponse.SERVING:
                return
            time.sleep(0.2)
        raise RuntimeError(f"niemphongd did not become ready; see {self.log_path}")

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://{self.config['metrics']['listen']}/metrics", timeout=30) as response:
            return response.read().decode()


def process_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def process_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def metric_value(page: str, name: str) -> float:
    for line in page.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)


class Client(threading.Thread):
    """One scanning station and its viewer, doing a random mix of work until the deadline."""

    def __init__(self, index: int, env: Environment, deadline: float, results: Results, seed: int) -> None:
        super().__init__(name=f"soak-client-{index}", daemon=True)
        self.index = index
        self.env = env
        self.deadline = deadline
        self.results = results
        self.random = random.Random(seed)
        self.scanner = f"soak-scanner-{index}"
        self.viewer = f"soak-viewer-{index}"
        self.sealed: list[tuple[bytes, bytes, pb.SealSummary]] = []
        self.channels: dict[tuple[str, str], grpc.Channel] = {}

    def channel(self, identity: str) -> grpc.Channel:
        transport = self.random.choice(("unix", "tcp"))
        key = (identity, transport)
        if key not in self.channels:
            self.channels[key] = self.env.channel(identity, transport)
        return self.channels[key]

    def run(self) -> None:
        operations = list(MIX)
        weights = [MIX[name] for name in operations]
        try:
            while time.monotonic() < self.deadline:
                operation = self.random.choices(operations, weights)[0]
                if operation in {"inspect", "access_and_open"} and not self.sealed:
                    operation = "seal"
                try:
                    getattr(self, operation)()
                except grpc.RpcError as error:
                    self.results.fail(f"{self.name} {operation}: {error.code().name} {error.details()}")
                except AssertionError as error:
                    self.results.fail(f"{self.name} {operation}: {error}")
                else:
                    self.results.count(operation)
        finally:
            for channel in self.channels.values():
                channel.close()

    def seal(self) -> None:
        size = self.random.choice((1024, 64 * 1024, 300_000, 2 * 1024 * 1024 + 17))
        data = self.random.randbytes(size)
        level = pb.LEVEL_TOI_MAT if self.random.random() < 0.2 else pb.LEVEL_MAT

        def requests():  # type: ignore[no-untyped-def]
            yield pb.SealRequest(metadata=pb.SealMetadata(level=level, document=pb.DocumentMetadata(
                doc_number=f"{self.index}/SOAK", issued_on="2025-05-20", source_name="soak.pdf")))
            for start in range(0, len(data), CHUNK):
                yield pb.SealRequest(chunk=data[start:start + CHUNK])

        envelope = bytearray()
        summary = None
        for response in pb_grpc.EnvelopeServiceStub(self.channel(self.scanner)).Seal(requests(), timeout=120):
            if response.WhichOneof("payload") == "chunk":
                envelope += response.chunk
            else:
                summary = response.summary
        assert summary is not None, "seal ended without a summary"
        assert summary.envelope_bytes == len(envelope), "envelope size differs from the summary"
        self.sealed = (self.sealed + [(data, bytes(envelope), summary)])[-3:]

    def inspect(self) -> None:
        _, envelope, summary = self.random.choice(self.sealed)
        response = pb_grpc.EnvelopeServiceStub(self.channel(self.viewer)).Inspect(
            pb.InspectRequest(envelope_head=envelope[:80 * 1024], envelope_bytes=len(envelope)), timeout=60)
        assert response.artefact_id == summary.artefact_id, "inspect named another artefact"
        assert response.registered, "a sealed artefact is not registered"

    def access_and_open(self) -> None:
        data, envelope, summary = self.random.choice(self.sealed)
        access = pb_grpc.AccessServiceStub(self.channel(self.viewer))
        request = access.RequestAccess(pb.RequestAccessRequest(artefact_id=summary.artefact_id, purpose="soak"),
                                       timeout=60)
        approvers = ["approver-1", "approver-2"] if summary.level == pb.LEVEL_TOI_MAT else ["approver-1"]
        for approver in approvers:
            pb_grpc.AccessServiceStub(self.channel(approver)).Approve(
                pb.ApproveRequest(request_id=request.request_id), timeout=60)

        def requests():  # type: ignore[no-untyped-def]
            yield pb.OpenRequest(start=pb.OpenStart(request_id=request.request_id))
            for start in range(0, len(envelope), CHUNK):
                yield pb.OpenRequest(chunk=envelope[start:start + CHUNK])

        plaintext = bytearray()
        for response in pb_grpc.EnvelopeServiceStub(self.channel(self.viewer)).Open(requests(), timeout=120):
            if response.WhichOneof("payload") == "chunk":
                plaintext += response.chunk
        assert bytes(plaintext) == data, "opened plaintext differs from what was sealed"

    def decide(self) -> None:
        document = pb.DocumentToDecide(row="1", level=pb.LEVEL_MAT, doc_number=f"{self.index}/SOAK",
                                       issued_on="2010-01-01")
        response = pb_grpc.PolicyServiceStub(self.channel(self.scanner)).Decide(
            pb.DecideRequest(documents=[document]), timeout=60)
        assert len(response.documents) == 1, "decide returned another number of documents"

    def policy(self) -> None:
        pb_grpc.PolicyServiceStub(self.channel(self.viewer)).GetPolicy(pb.GetPolicyRequest(), timeout=60)

    def pending(self) -> None:
        pb_grpc.AccessServiceStub(self.channel(self.viewer)).ListPending(pb.ListPendingRequest(), timeout=60)


def run(seconds: float, clients: int, seed: int) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix="niemphong-soak-"))
    env = Environment(root / "env", clients)
    env.start()
    assert env.process is not None
    pid = env.process.pid
    results = Results()
    samples: list[tuple[float, int]] = []
    try:
        idle_fds = process_fds(pid)
        started = time.monotonic()
        deadline = started + seconds
        workers = [Client(index, env, deadline, results, seed + index) for index in range(clients)]
        for worker in workers:
            worker.start()
        while any(worker.is_alive() for worker in workers):
            samples.append((time.monotonic() - started, process_rss(pid)))
            time.sleep(1.0)
        for worker in workers:
            worker.join()

        settle_deadline = time.monotonic() + FD_SETTLE_SECONDS
        end_fds = process_fds(pid)
        while end_fds > idle_fds and time.monotonic() < settle_deadline:
            time.sleep(0.5)
            end_fds = process_fds(pid)
        page = env.metrics()
    finally:
        exit_code = env.stop()

    warm_up = max(MIN_WARM_UP_SECONDS, seconds / 4)
    baseline_window = [rss for at, rss in samples if warm_up <= at < warm_up + 10] or [samples[0][1]]
    final_window = [rss for at, rss in samples[-10:]]
    # Resident memory swings by 10 to 15% from second to second while 2 MiB
    # buffers come and go in many threads, so the warm-up level is the
    # highest sample of its window and the end level the median of the last ten.
    baseline = max(baseline_window)
    final = statistics.median(final_window)
    sessions_in_use = metric_value(page, "niemphong_token_sessions_in_use")
    sessions_open = metric_value(page, "niemphong_token_sessions")
    problems = list(results.errors)
    growth = final / baseline - 1
    if growth >= MAX_MEMORY_GROWTH:
        problems.append(f"resident memory grew {growth:.1%} after warm-up ({baseline:.0f} to {final:.0f} bytes)")
    if end_fds > idle_fds:
        problems.append(f"daemon has {end_fds} open file descriptors after the run, {idle_fds} before")
    if sessions_in_use != 0:
        problems.append(f"{sessions_in_use:.0f} token sessions still in use after the run")
    if exit_code != 0:
        problems.append(f"niemphongd exited with {exit_code}; see {env.log_path}")
    if not problems:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "seconds": seconds,
        "clients": clients,
        "operations": dict(results.operations),
        "operations_total": sum(results.operations.values()),
        "errors": len(results.errors),
        "rss_after_warm_up_bytes": baseline,
        "rss_at_end_bytes": final,
        "rss_growth": round(growth, 4),
        # Resident memory every 30 s of the run, in MiB, to tell a plateau from a leak.
        "rss_mib_every_30_s": [round(rss / 2**20, 1) for at, rss in samples[::30]],
        "fds_idle": idle_fds,
        "fds_after": end_fds,
        "token_sessions_open": sessions_open,
        "token_sessions_in_use": sessions_in_use,
        "problems": problems[:50],
        "log": str(env.log_path) if problems else "",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Soak niemphongd with concurrent clients over loopback.")
    parser.add_argument("--seconds", type=float, default=600, help="how long the clients run, in seconds")
    parser.add_argument("--clients", type=int, default=32, help="number of concurrent clients")
    parser.add_argument("--seed", type=int, default=1, help="seed of the clients' random choices")
    parser.add_argument("--json", metavar="FILE", help="also write the report to FILE as JSON")
    options = parser.parse_args(argv)

    report = run(options.seconds, options.clients, options.seed)
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if options.json:
        Path(options.json).write_text(text + "\n", encoding="utf-8")
    return 0 if not report["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
