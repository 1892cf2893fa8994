"""Shared runner for the atheris fuzz harnesses in this folder.

Each harness module defines ``NAME``, ``seeds()`` (inputs that reach deep
into the parser, written to the corpus before fuzzing) and
``test_one_input(data)``, which raises only for a finding: any exception
that is not one of the target's documented error types. Run a harness as a
program to fuzz it:

    python tests/fuzz/fuzz_envelope_header.py -max_total_time=60 CORPUS_DIR

Every input that once made a harness fail is kept under
``regressions/NAME/`` and replayed by test_fuzz_harnesses.py without atheris.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ContextManager

FOLDER = Path(__file__).resolve().parent
REGRESSIONS = FOLDER / "regressions"
# True when a harness runs as a program (fuzzing), false when pytest imports it.
FUZZING = Path(sys.argv[0]).name.startswith("fuzz_")


def instrumented_imports() -> ContextManager[object]:
    """Instrument the niemphong modules imported inside the block for coverage, when fuzzing.

    Instrumenting only the project's code keeps start-up to a second or two;
    instrumenting every loaded module (grpc, protobuf, cryptography) takes
    half a minute.
    """
    if not FUZZING:
        return contextlib.nullcontext()
    import atheris

    return atheris.instrument_imports(include=["niemphong"])


def fuzz(name: str, test_one_input: Callable[[bytes], None], seeds: Callable[[], Iterable[bytes]]) -> None:
    """Run libFuzzer through atheris on ``test_one_input``, seeding the first corpus folder given."""
    import atheris

    argv = list(sys.argv)
    paths = [Path(arg) for arg in argv[1:] if not arg.startswith("-")]
    if any(path.is_file() for path in paths):
        # Replaying saved inputs: libFuzzer runs each file once.
        corpus = None
    elif paths:
        corpus = paths[0]
        corpus.mkdir(parents=True, exist_ok=True)
    else:
        corpus = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
        argv.append(str(corpus))
    if corpus is not None:
        _seed_corpus(corpus, name, seeds())

    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


def _seed_corpus(corpus: Path, name: str, seeds: Iterable[bytes]) -> None:
    for index, seed in enumerate(seeds):
        (corpus / f"seed-{index:03d}").write_bytes(seed)
    regression_folder = REGRESSIONS / name
    if regression_folder.is_dir():
        for path in sorted(regression_folder.iterdir()):
            (corpus / f"regression-{path.name}").write_bytes(path.read_bytes())
