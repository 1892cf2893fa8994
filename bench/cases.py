"""The benchmarks. Each measures niemphongd and its baseline in the same run, interleaved, and returns table rows."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench import harness
from bench.harness import MIB, BenchEnv, median, timed
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc


@dataclass(frozen=True)
class Mode:
    name: str
    stream_bytes: int
    spool_bytes: int
    rounds: int
    small_seconds: float
    token_artefacts: int
    pool_sizes: tuple[int, ...]
    slow_seconds: float
    memory_bytes: int
    startups: int


MODES = {
    "quick": Mode("quick", 4 * MIB, 4 * MIB, 1, 0.5, 3, (1, 2), 2.0, 16 * MIB, 1),
    "standard": Mode("standard", 256 * MIB, 1024 * MIB, 3, 4.0, 40, (1, 2, 4, 8), 3.0, 1024 * MIB, 3),
    "full": Mode("full", 1024 * MIB, 1024 * MIB, 5, 8.0, 100, (1, 2, 4, 8, 16), 5.0, 4096 * MIB, 5),
}


@dataclass
class Row:
    """One line of the results table."""

    figure: str
    measured: str
    baseline: str
    ratio: float | None
    target: str
    met: bool | None

    def cells(self) -> list[str]:
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}"
        met = {True: "yes", False: "NO", None: "-"}[self.met]
        return [self.figure, self.measured, self.baseline, ratio, self.target, met]


def _mb_per_s(size: int, seconds: float) -> str:
    return f"{size / seconds / 1e6:,.0f} MB/s"


# 1. Streams over the unix socket -------------------------------------------------


def stream(env: BenchEnv, work: Path, logs: Path, mode: Mode) -> list[Row]:
    """Seal and open a file streamed over the unix socket, against a bare echo of the same chunks."""
    size = mode.stream_bytes
    source = work / "stream.bin"
    harness.write_random_file(source, size)
    envelope = work / "stream.npe"
    times: dict[str, list[float]] = {"echo": [], "seal": [], "open": [], "echo_open": []}

    with harness.daemon(env, logs).start() as server:
        with env.channel("scanner") as channel:
            harness.stream_seal(channel, harness.file_chunks(source), out=envelope)
        artefact_id = _artefact_id(env, envelope)
        harness.grant(env, artefact_id)
        server.stop()

    for _ in range(mode.rounds):
        with harness.echo_server(env, logs).start(health=False):
            with env.channel("scanner") as channel:
                times["echo"].append(timed(lambda: harness.stream_echo(channel, harness.file_chunks(source)))[0])
                times["echo_open"].append(timed(lambda: harness.stream_echo(channel, harness.file_chunks(envelope)))[0])
        with harness.daemon(env, logs).start():
            with env.channel("scanner") as channel:
                times["seal"].append(timed(lambda: harness.stream_seal(channel, harness.file_chunks(source)))[0])
            with env.channel("viewer") as channel:
                times["open"].append(timed(lambda: harness.stream_open(channel, harness.file_chunks(envelope)))[0])

    source.unlink()
    envelope.unlink()
    label = f"{size // MIB} MiB"
    rows = []
    for kind, baseline in (("seal", "echo"), ("open", "echo_open")):
        ratio = median(times[baseline]) / median(times[kind])
        rows.append(Row(
            f"{kind.capitalize()} {label} streamed, unix socket",
            _mb_per_s(size, median(times[kind])), "echo " + _mb_per_s(size, median(times[baseline])),
            ratio, ">= 0.90", ratio >= 0.9,
        ))
    return rows


def _artefact_id(env: BenchEnv, envelope: Path) -> str:
    with envelope.open("rb") as handle:
        head = handle.read(80 * 1024)
    with env.channel("scanner") as channel:
        return pb_grpc.EnvelopeServiceStub(channel).Inspect(pb.InspectRequest(envelope_head=head), timeout=30).artefact_id


# 2. Local spool mode against age --------------------------------------------------


def _aesgcm_raw(size: int, threads: int) -> float:
    """Bytes per second of AES-256-GCM over 64 KiB segments in memory, with ``threads`` threads."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    segment = os.urandom(64 * 1024)
    count = max(threads, size // len(segment))

    def work(part: int) -> None:
        for index in range(part, count, threads):
            aead.encrypt(index.to_bytes(12, "big"), segment, b"aad")

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    return count * len(segment) / (time.perf_counter() - start)


def spool(env: BenchEnv, work: Path, logs: Path, mode: Mode) -> list[Row]:
    """SealFile and OpenFile against age on the same file in the same folder."""
    age = shutil.which("age")
    age_keygen = shutil.which("age-keygen")
    size = mode.spool_bytes
    folder = env.spool_root / "scanner"
    source = folder / "spool.bin"
    harness.write_random_file(source, size)
    identity = work / "age.key"
    if age and age_keygen:
        subprocess.run([age_keygen, "-o", str(identity)], check=True, capture_output=True)
        recipient = subprocess.run([age_keygen, "-y", str(identity)], check=True, capture_output=True, text=True).stdout.strip()
    times: dict[str, list[float]] = {"seal": [], "open": [], "age": [], "age_d": []}

    with harness.daemon(env, logs).start():
        with env.channel("scanner") as channel:
            stub = pb_grpc.SpoolServiceStub(channel)
            summary = stub.SealFile(pb.SealFileRequest(
                metadata=harness.METADATA, source_path="spool.bin", envelope_path="spool.npe")).summary
        harness.grant(env, summary.artefact_id)
        viewer_folder = env.spool_root / "viewer"
        shutil.copyfile(folder / "spool.npe", viewer_folder / "spool.npe")

        for _ in range(mode.rounds):
            for name in ("spool.npe.2", "spool.age"):
                (folder / name).unlink(missing_ok=True)
            for name in ("opened.bin", "opened-age.bin"):
                (viewer_folder / name).unlink(missing_ok=True)
            with env.channel("scanner") as channel:
                request = pb.SealFileRequest(metadata=harness.METADATA, source_path="spool.bin",
                                             envelope_path="spool.npe.2")
                times["seal"].append(timed(lambda: pb_grpc.SpoolServiceStub(channel).SealFile(request))[0])
            with env.channel("viewer") as channel:
                request = pb.OpenFileRequest(envelope_path="spool.npe", output_path="opened.bin")
                times["open"].append(timed(lambda: pb_grpc.SpoolServiceStub(channel).OpenFile(request))[0])
            if age:
                times["age"].append(timed(lambda: subprocess.run(
                    [age, "-r", recipient, "-o", str(folder / "spool.age"), str(source)], check=True))[0])
                times["age_d"].append(timed(lambda: subprocess.run(
                    [age, "-d", "-i", str(identity), "-o", str(viewer_folder / "opened-age.bin"),
                     str(folder / "spool.age")], check=True))[0])

    raw_one = _aesgcm_raw(min(size, 512 * MIB), 1)
    raw_all = _aesgcm_raw(min(size, 512 * MIB), os.cpu_count() or 1)
    for path in [source, folder / "spool.npe", folder / "spool.npe.2", folder / "spool.age",
                 env.spool_root / "viewer" / "spool.npe", env.spool_root / "viewer" / "opened.bin",
                 env.spool_root / "viewer" / "opened-age.bin"]:
        path.unlink(missing_ok=True)

    label = f"{size // MIB} MiB"
    seal_rate = size / median(times["seal"])
    open_rate = size / median(times["open"])
    rows = []
    if age:
        ratio = median(times["age"]) / median(times["seal"])
        rows.append(Row(f"Spool seal {label} (SealFile)", _mb_per_s(size, median(times["seal"])),
                        "age " + _mb_per_s(size, median(times["age"])), ratio, ">= 2.00", ratio >= 2.0))
        ratio = median(times["age_d"]) / median(times["open"])
        rows.append(Row(f"Spool open {label} (OpenFile)", _mb_per_s(size, median(times["open"])),
                        "age -d " + _mb_per_s(size, median(times["age_d"])), ratio, "(none)", None))
    else:
        rows.append(Row(f"Spool seal {label} (SealFile)", _mb_per_s(size, median(times["seal"])),
                        "age not installed", None, ">= 2.00", None))
    rows.append(Row("Spool seal, fraction of raw AES-256-GCM", _mb_per_s(size, median(times["seal"])),
                    f"AESGCM {raw_all / 1e6:,.0f} MB/s on {os.cpu_count()} threads ({raw_one / 1e6:,.0f} on 1)",
                    seal_rate / raw_all, "(report)", None))
    rows.append(Row("Spool open, fraction of raw AES-256-GCM", _mb_per_s(size, median(times["open"])),
                    f"AESGCM {raw_all / 1e6:,.0f} MB/s", open_rate / raw_all, "(report)", None))
    return rows


# 3. Many small artefacts -----------------------------------------------------------


def small(env: BenchEnv, work: Path, logs: Path, mode: Mode, clients: int = 16) -> list[Row]:
    """4 KiB seals per second with 16 concurrent clients, against a bare unary echo."""
    runs: dict[str, list[dict[str, float]]] = {"echo": [], "seal": [], "seal-stream": []}
    for _ in range(mode.rounds):
        with harness.echo_server(env, logs).start(health=False):
            runs["echo"].append(harness.run_small_calls(env, "echo", clients, mode.small_seconds, 4096))
        with harness.daemon(env, logs).start():
            for kind in ("seal", "seal-stream"):
                runs[kind].append(harness.run_small_calls(env, kind, clients, mode.small_seconds, 4096))

    def pick(kind: str) -> dict[str, float]:
        return {key: median([run[key] for run in runs[kind]]) for key in runs[kind][0]}

    def describe(figures: dict[str, float]) -> str:
        return f"{figures['per_second']:,.0f}/s, p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms"

    echo = pick("echo")
    rows = []
    for kind, label, target in (("seal", "SealSmall", ">= 0.70"), ("seal-stream", "Seal stream", "(report)")):
        figures = pick(kind)
        ratio = figures["per_second"] / echo["per_second"] if echo["per_second"] else None
        met = ratio >= 0.7 if kind == "seal" and ratio is not None else None
        rows.append(Row(
            f"4 KiB seals/s, {clients} clients, {label}", describe(figures), "unary echo " + describe(echo),
            ratio, target, met,
        ))
    return rows


# 4. Token calls per artefact ---------------------------------------------------------


def _spy_counts(log: Path, start_line: int) -> tuple[dict[str, int], int]:
    counts: dict[str, int] = {}
    lines = log.read_text(errors="replace").splitlines()
    for line in lines[start_line:]:
        match = re.match(r"^\d+: (C_\w+)$", line)
        if match:
            counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    return counts, len(lines)


def _bare_wrap_loop(env: BenchEnv, count: int) -> float:
    """Data keys drawn, imported, wrapped and destroyed per second, straight through python-pkcs11."""
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

    from niemphong.daemon.config import load_config, read_pin

    config = load_config(env.config_path)
    os.environ.update(config.token.env)
    token = pkcs11.lib(str(config.token.module)).get_token(token_label=config.token.label)
    with token.open(rw=True, user_pin=read_pin(config.token)) as session:
        kek = session.get_key(object_class=ObjectClass.SECRET_KEY, label="niemphong-mat/v1")
        start = time.perf_counter()
        for _ in range(count):
            value = session.generate_random(256)
            key = session.create_object({
                Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES, Attribute.VALUE: value,
                Attribute.TOKEN: False, Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True,
            })
            kek.wrap_key(key, mechanism=Mechanism.AES_KEY_WRAP_PAD)
            key.destroy()
        return count / (time.perf_counter() - start)


def token_calls(env: BenchEnv, work: Path, logs: Path, mode: Mode) -> list[Row]:
    """PKCS#11 calls per seal and per open, counted by OpenSC's pkcs11-spy between the daemon and SoftHSM2."""
    rows = []
    spy = next((path for path in harness.SPY_MODULES if os.path.exists(path)), None)
    count = mode.token_artefacts
    if spy is None:
        rows.append(Row("PKCS#11 calls per seal / open", "pkcs11-spy not installed (opensc-pkcs11)", "", None,
                        "1 C_WrapKey / 1 C_UnwrapKey", None))
    else:
        spy_log = work / "pkcs11-spy.log"
        config = env.write_config("niemphongd-spy.toml", module=spy, token_env={
            "PKCS11SPY": harness.SOFTHSM_MODULE, "PKCS11SPY_OUTPUT": str(spy_log)})
        with harness.daemon(env, logs, config).start():
            with env.channel("scanner") as channel:
                # The first seal and open on each pool session look up the
                # key-encryption key; warm all of them before counting.
                warm = [harness.stream_seal_bytes(channel, os.urandom(4096)) for _ in range(8)]
                _, mark = _spy_counts(spy_log, 0)
                measured = [harness.stream_seal_bytes(channel, os.urandom(4096)) for _ in range(count)]
                seal_counts, _ = _spy_counts(spy_log, mark)
            for envelope in warm + measured:
                harness.grant(env, _artefact_id_bytes(env, envelope))
            with env.channel("viewer") as channel:
                for envelope in warm:
                    harness.stream_open(channel, iter([envelope]))
                _, mark = _spy_counts(spy_log, 0)
                for envelope in measured:
                    harness.stream_open(channel, iter([envelope]))
                open_counts, _ = _spy_counts(spy_log, mark)
            opens = count
        # The log holds data keys in hex: a throwaway token, but remove it anyway.
        spy_log.unlink(missing_ok=True)

        def per(counts: dict[str, int], n: int) -> str:
            # NOTE: the health check's C_GenerateRandom every 5 s on the login
            # session is counted too when it falls inside the window.
            return ", ".join(f"{name} {value / n:g}" for name, value in sorted(counts.items()))

        seal_wrap = seal_counts.get("C_WrapKey", 0) / count
        open_unwrap = open_counts.get("C_UnwrapKey", 0) / opens
        rows.append(Row("PKCS#11 calls per seal", per(seal_counts, count), f"{count} seals", None,
                        "C_WrapKey 1", seal_wrap == 1))
        rows.append(Row("PKCS#11 calls per open", per(open_counts, opens), f"{opens} opens", None,
                        "C_UnwrapKey 1", open_unwrap == 1))

    bare = _bare_wrap_loop(env, max(200, count * 5))
    with harness.daemon(env, logs).start():
        with env.channel("scanner") as channel:
            harness.stream_seal_bytes(channel, b"warm")
            n = max(100, count * 3)
            seconds, _ = timed(lambda: [harness.stream_seal_bytes(channel, os.urandom(4096)) for _ in range(n)])
    rate = n / seconds
    rows.append(Row("Sequential 4 KiB seals/s vs bare python-pkcs11 wrap loop", f"{rate:,.0f}/s",
                    f"wrap loop {bare:,.0f}/s", rate / bare, "(report)", None))
    return rows


def _artefact_id_bytes(env: BenchEnv, envelope: bytes) -> str:
    with env.channel("scanner") as channel:
        return pb_grpc.EnvelopeServiceStub(channel).Inspect(
            pb.InspectRequest(envelope_head=envelope[:80 * 1024]), timeout=30).artefact_id


# 5. A slow token ------------------------------------------------------------------


def slow_token(env: BenchEnv, work: Path, logs: Path, mode: Mode, latency_ms: float = 10.0,
               parallel: int = 4, clients: int = 16) -> list[Row]:
    """4 KiB seals per second against the session pool size, every PKCS#11 call delayed."""
    rates = {}
    for sessions in mode.pool_sizes:
        config = env.write_config(f"niemphongd-sessions-{sessions}.toml", sessions=sessions)
        with harness.slow_daemon(env, logs, config, latency_ms, parallel).start():
            rates[sessions] = harness.run_small_calls(env, "seal", clients, mode.slow_seconds, 4096)["per_second"]
    base = rates[mode.pool_sizes[0]]
    rows = []
    for sessions, rate in rates.items():
        rows.append(Row(
            f"Slow token ({latency_ms:g} ms/call, serves {parallel} at once): {sessions} session(s)",
            # No seal may finish inside a short window when 16 clients queue on one session.
            f"{rate:,.1f} seals/s", f"1 session {base:,.1f}/s", rate / base if base else None,
            "grows up to the token's limit", None,
        ))
    return rows


# 6. Memory and start-up -------------------------------------------------------------


def memory(env: BenchEnv, work: Path, logs: Path, mode: Mode) -> list[Row]:
    """Peak resident memory of the daemon sealing a large file, and time from start to SERVING."""
    startups = []
    for _ in range(mode.startups):
        with harness.daemon(env, logs).start() as server:
            startups.append(server.ready_seconds)
            idle = server.memory_kib()["VmRSS"]

    size = mode.memory_bytes
    with harness.daemon(env, logs).start() as server:
        with env.channel("scanner") as channel:
            harness.stream_seal(channel, harness.generated_chunks(size))
        peak_stream = server.memory_kib()["VmHWM"]

    # A sparse file reads as zeros from the page cache without using disk space.
    sparse = env.spool_root / "scanner" / "sparse.bin"
    with sparse.open("wb") as handle:
        handle.truncate(size)
    with harness.daemon(env, logs).start() as server:
        with env.channel("scanner") as channel:
            pb_grpc.SpoolServiceStub(channel).SealFile(pb.SealFileRequest(
                metadata=harness.METADATA, source_path="sparse.bin", envelope_path="sparse.npe"))
        peak_spool = server.memory_kib()["VmHWM"]
    sparse.unlink()
    (env.spool_root / "scanner" / "sparse.npe").unlink(missing_ok=True)

    label = f"{size // MIB} MiB"
    return [
        Row(f"Peak RSS sealing {label} streamed", f"{peak_stream / 1024:,.0f} MiB", f"idle {idle / 1024:,.0f} MiB",
            None, "<= 150 MiB", peak_stream / 1024 <= 150),
        Row(f"Peak RSS sealing {label} in spool", f"{peak_spool / 1024:,.0f} MiB", f"idle {idle / 1024:,.0f} MiB",
            None, "<= 150 MiB", peak_spool / 1024 <= 150),
        Row("Start to SERVING", f"{median(startups):.2f} s", f"median of {len(startups)}", None, "(report)", None),
    ]


CASES = {
    "stream": stream,
    "spool": spool,
    "small": small,
    "token": token_calls,
    "slow": slow_token,
    "memory": memory,
}
