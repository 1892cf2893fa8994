"""Run the benchmarks and print the table; with --write, put it into docs/benchmarks.md.

    python -m bench [--quick | --full] [--only stream,spool,...] [--write] [--workdir DIR]

Every figure is a ratio against a baseline measured in the same run, or an
absolute value with its target. The default mode takes a few minutes on two
cores; --quick takes under a minute and only checks that everything runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import cases, harness

BEGIN = "<!-- results:begin -->"
END = "<!-- results:end -->"
HEADER = ["Figure", "Niêm Phong", "Baseline (same run)", "Ratio", "Target", "Met"]


def machine() -> list[str]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        memory_kib = int(meminfo.readline().split()[1])

    def version(command: list[str]) -> str:
        if shutil.which(command[0]) is None:
            return "not installed"
        result = subprocess.run(command, capture_output=True, text=True)
        return (result.stdout or result.stderr).strip().splitlines()[0]

    packages = ", ".join(
        f"{name} {importlib.metadata.version(name)}" for name in ("grpcio", "cryptography", "protobuf", "python-pkcs11")
    )
    return [
        f"- CPU: {cpu}, `nproc` = {os.cpu_count()}",
        f"- Memory: {memory_kib / 1024 / 1024:.1f} GiB",
        f"- Kernel: {platform.release()}; Python {platform.python_version()}; {packages}",
        f"- SoftHSM2 {version(['softhsm2-util', '--version'])}; age {version(['age', '--version'])}",
        # Other work on the machine slows every figure; the ratios share it.
        "- Load average at the end (1, 5, 15 min): " + ", ".join(f"{load:.1f}" for load in os.getloadavg()),
    ]


def table(rows: list[cases.Row]) -> list[str]:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row.cells()) + " |" for row in rows]
    return lines


def write_results(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    path.write_text(text[:start] + "\n" + block + "\n" + text[end:])


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="tiny sizes and one round: checks that the suite runs")
    size.add_argument("--full", action="store_true",
                      help="1 GiB streams, 4 GiB memory test, 5 rounds (about 7 minutes on 2 cores)")
    parser.add_argument("--only", default=",".join(cases.CASES),
                        help=f"comma-separated benchmarks to run (default: all of {','.join(cases.CASES)})")
    parser.add_argument("--write", action="store_true", help="replace the results section of docs/benchmarks.md")
    parser.add_argument("--workdir", help="folder for the token, files and logs (default: a new temporary folder)")
    options = parser.parse_args()

    mode = cases.MODES["quick" if options.quick else "full" if options.full else "standard"]
    selected = [name.strip() for name in options.only.split(",") if name.strip()]
    unknown = [name for name in selected if name not in cases.CASES]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(cases.CASES)}")

    work = Path(tempfile.mkdtemp(prefix="niemphong-bench-", dir=options.workdir))
    logs = work / "logs"
    logs.mkdir()
    started = time.monotonic()
    print(f"niemphong benchmarks, {mode.name} mode, working in {work}", flush=True)
    try:
        env = harness.make_env(work / "env")
        rows: list[cases.Row] = []
        for name in selected:
            case_start = time.monotonic()
            new_rows = cases.CASES[name](env, work, logs, mode)
            rows += new_rows
            for row in new_rows:
                print("  " + " | ".join(row.cells()), flush=True)
            print(f"{name}: {time.monotonic() - case_start:.0f} s", flush=True)
    except BaseException:
        print(f"benchmark failed; logs are in {logs}", file=sys.stderr)
        raise
    else:
        shutil.rmtree(work, ignore_errors=True)

    elapsed = time.monotonic() - started
    command = "python -m bench" + {"quick": " --quick", "full": " --full", "standard": ""}[mode.name]
    block = "\n".join([
        f"Run on {dt.date.today().isoformat()} with `{command}` ({mode.name} mode) in {elapsed / 60:.1f} minutes.",
        "",
        *machine(),
        "",
        *table(rows),
    ])
    print()
    print(block)
    if options.write:
        write_results(harness.REPO / "docs" / "benchmarks.md", block)
        print(f"\nwrote {harness.REPO / 'docs' / 'benchmarks.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
