"""Hostile inputs and the harness that throws them at the kit (benchmarks/bench_fuzz.py, tests/unit/test_fuzz.py).

Cases are seeded (case i of seed s is always the same bytes): mutations of the GPU Operator's default ConfigMap and
README's example files (byte flips, truncations, duplicated/deleted/swapped lines, type swaps, huge counts,
indentation damage, control characters, stray anchors), and generated ones (alias bombs, recursive aliases and
merges, deep nesting, huge documents and counts, binary garbage, non-UTF-8, byte-order marks of every kind, empty
and whitespace files, 50 MB files). Each case goes to four targets, in process and timed: `validate FILE
--instance-type p5.48xlarge` (text or --json, sometimes --all-configs or -c, sometimes from stdin),
`mig-parted apply -f FILE`, the clusters-file loader (`clusters list --clusters-file`, the call the plugin's
--mig-clusters-file makes) and `--mig-config-file` (plugin/checks.read_user_config, what the plugin calls when the
session starts). `run_subprocess` repeats a sample as real processes and `run_pytest` as real pytest runs.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGMAP = ROOT / "fixtures" / "configs" / "default-mig-parted-config.yaml"
SLOW_S = 5.0  # no case may take longer
HANG_S = 30.0  # a case still running after this is stopped (and counted as slow)
BIG = 50 * 2**20  # the size of the "50 MB" cases
TARGETS = ("validate", "mig-parted", "clusters", "config-file")


# ---- seeds -------------------------------------------------------------------------------------------------
def readme_examples(readme: Path = ROOT / "README.md") -> dict[str, str]:
    """README's example files: my.yaml (after `$ cat my.yaml`) and the clusters file (the yaml block)."""
    text = readme.read_text(encoding="utf-8")
    my = re.search(r"\$ cat my\.yaml\n(.*?)\n\$ ", text, re.S)
    clusters = re.search(r"```yaml\n(.*?)```", text, re.S)
    if my is None or clusters is None:
        raise SystemExit("README.md no longer has the my.yaml example or the clusters-file block: update fuzz_cases.py")
    return {"my.yaml": my.group(1) + "\n", "clusters.yaml": clusters.group(1)}


def seeds() -> dict[str, str]:
    found = {"default-configmap": DEFAULT_CONFIGMAP.read_text(encoding="utf-8"), **readme_examples()}
    manifest = found["default-configmap"]
    found["default-config.yaml"] = _embedded(manifest)
    found["small.yaml"] = ("version: v1\nmig-configs:\n  all-balanced:\n    - devices: all\n      mig-enabled: true\n"
                           "      mig-devices:\n        1g.10gb: 2\n        2g.20gb: 1\n        3g.40gb: 1\n")
    return found


def _embedded(manifest: str) -> str:
    """The mig-parted file inside the ConfigMap (its `config.yaml: |` block), dedented."""
    lines = manifest.split("\n")
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("config.yaml: |")) + 1
    body = [line[4:] for line in lines[start:] if line.startswith("    ") or not line.strip()]
    return "\n".join(body) + "\n"


# ---- mutations ---------------------------------------------------------------------------------------------
VALUES = ["[1, 2]", "{a: 1}", "~", "null", "true", "yes", "1e400", "-1", "0", "99999999999999999999999", "'x'",
          "!!binary aGVsbG8=", "&x 1", "*nope", "2001-12-14", "0x1F", ".nan", "-.inf", "[[[[", "|-\n  x", "''",
          '"\\u0000"', "!!python/object:os.system ls", "<<: *a", "{<<: {a: 1}}", "[*a, *a]", "1_000", "0o17", "+12"]
KEYS = ["mig-devicez", "~", "null", "<<", "? [a]", "devices", "mig-enabled", "version", "1g.10gb", "all-balanced",
        "backend", "nodes", "x" * 300, "\u202e", "mig-configs"]
CONTROL = [chr(c) for c in (*range(0, 9), 11, 12, *range(14, 32), 0x7F, 0x85, 0x2028, 0xFEFF, 0xFFFE)]


def _lines(text: str) -> list[str]:
    return text.split("\n")


def m_byte_flip(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if out:
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def m_truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def m_duplicate_lines(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i = rng.randrange(len(lines))
    n = rng.randint(1, 6)
    return "\n".join(lines[: i + n] + lines[i: i + n] * rng.randint(1, 3) + lines[i + n:])


def m_delete_lines(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i = rng.randrange(len(lines))
    return "\n".join(lines[:i] + lines[i + rng.randint(1, 5):])


def m_swap_lines(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def m_type_swap(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    candidates = [i for i, line in enumerate(lines) if re.search(r":\s*\S", line) or line.strip().startswith("- ")]
    for i in rng.sample(candidates, min(len(candidates), rng.randint(1, 4))):
        head, sep, _ = lines[i].partition(": ")
        lines[i] = f"{head}: {rng.choice(VALUES)}" if sep else re.sub(r"- .*", f"- {rng.choice(VALUES)}", lines[i])
    return "\n".join(lines)


def m_rename_key(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    candidates = [i for i, line in enumerate(lines) if re.match(r"\s*-?\s*[\w.\"'+-]+:", line)]
    if candidates:
        i = rng.choice(candidates)
        lines[i] = re.sub(r"^(\s*-?\s*)[\w.\"'+-]+:", lambda m: f"{m.group(1)}{rng.choice(KEYS)}:", lines[i], count=1)
    return "\n".join(lines)


def m_huge_count(rng: random.Random, text: str) -> str:
    numbers = list(re.finditer(r"\b\d+\b", text))
    if not numbers:
        return text + f"\nx: {10 ** rng.randint(2, 400)}\n"
    m = rng.choice(numbers)
    value = rng.choice([10 ** rng.randint(2, 40), -(10 ** rng.randint(1, 30)), 2**63, 2**64, 2**63 - 1, 9999999])
    return text[: m.start()] + str(value) + text[m.end():]


def m_indent(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    for _ in range(rng.randint(1, 5)):
        i = rng.randrange(len(lines))
        lines[i] = rng.choice(["", " ", "  ", "\t", " \t", "      "]) + (
            lines[i].lstrip() if rng.random() < 0.5 else lines[i])
    return "\n".join(lines)


def m_control(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 5)):
        i = rng.randrange(len(text) + 1)
        text = text[:i] + rng.choice(CONTROL) + text[i:]
    return text


def m_anchor(rng: random.Random, text: str) -> str:
    lines = _lines(text)
    i = rng.randrange(len(lines))
    lines.insert(i, rng.choice(["x: &a [1, 2]", "y: *a", "- &b {devices: all}", "- *b", "<<: *a", "z: &a *a"]))
    return "\n".join(lines)


def m_unicode(rng: random.Random, text: str) -> str:
    i = rng.randrange(len(text) + 1)
    return text[:i] + rng.choice(["💥", "\u202e", "é", "\U0010ffff", "漢字", "\u0301" * 50, "Ω" * 1000]) + text[i:]


TEXT_MUTATIONS: list[Callable[[random.Random, str], str]] = [
    m_duplicate_lines, m_delete_lines, m_swap_lines, m_type_swap, m_rename_key, m_huge_count, m_indent, m_control,
    m_anchor, m_unicode]
BYTE_MUTATIONS: list[Callable[[random.Random, bytes], bytes]] = [m_byte_flip, m_truncate]


def encode(rng: random.Random, text: str) -> tuple[bytes, str]:
    """Usually UTF-8; sometimes any byte-order mark (right or wrong), UTF-16/32, or Latin-1 (not UTF-8)."""
    roll = rng.random()
    if roll < 0.80:
        return text.encode("utf-8", "surrogatepass"), "utf-8"
    how = rng.choice(["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1", "wrong-bom", "bom-only"])
    if how == "latin-1":
        return text.encode("latin-1", "replace") + b"\xe9\xff", how
    if how == "wrong-bom":
        return rng.choice([b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00"]) + text.encode(), how
    if how == "bom-only":
        return rng.choice([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"]), how
    return text.encode(how, "surrogatepass"), how


# ---- generated inputs --------------------------------------------------------------------------------------
def g_alias_bomb(rng: random.Random) -> str:
    width, depth = rng.randint(2, 10), rng.randint(3, 12)
    names = [f"l{i}" for i in range(depth)]
    lines = [f"{names[0]}: &{names[0]} [{', '.join(['x'] * width)}]"]
    for prev, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * width)}]")
    if rng.random() < 0.5:  # aimed at the mig-parted format: the configs are the bomb
        lines += ["version: v1", f"mig-configs: {{bomb: *{names[-1]}}}"]
    return "\n".join(lines) + "\n"


def g_cycle(rng: random.Random) -> str:
    return rng.choice([
        "a: &a [*a]\n", "a: &a {b: *a}\n", "a: &a {<<: *a}\n", "a: &a [1, [2, *a]]\n",
        "x: &a {backend: sim, nodes: *a}\n", "version: v1\nmig-configs: &m {a: *m}\n",
        "version: v1\nmig-configs:\n  a: &e\n    - devices: all\n      mig-enabled: false\n      x: *e\n",
        "a: &a {<<: [*a, {b: 1}]}\n", "- &a [*a]\n"])


def g_deep(rng: random.Random) -> str:
    depth = rng.choice([60, 63, 64, 65, 70, 500, 990, 5000, 100_000])
    kind = rng.choice(["flow-list", "flow-map", "block-map", "block-list"])
    if kind == "flow-list":
        return "[" * depth + "]" * depth + "\n"
    if kind == "flow-map":
        return "{a: " * depth + "1" + "}" * depth + "\n"
    depth = min(depth, 3000)  # block forms grow quadratically in size
    if kind == "block-map":
        return "".join("  " * i + "k:\n" for i in range(depth)) + "  " * depth + "1\n"
    return "".join("  " * i + "-\n" for i in range(depth)) + "  " * depth + "1\n"


def g_huge(rng: random.Random) -> str:
    kind = rng.choice(["entries", "configs", "values", "counts", "devices", "long-line", "clusters"])
    n = rng.choice([1_000, 20_000, 99_000, 150_000])
    if kind == "entries":
        entry = "    - devices: all\n      mig-enabled: false\n"
        return "version: v1\nmig-configs:\n  a:\n" + entry * min(n, 30_000)
    if kind == "configs":
        return "version: v1\nmig-configs:\n" + "".join(f"  c{i}: [{{devices: all, mig-enabled: false}}]\n"
                                                       for i in range(min(n, 40_000)))
    if kind == "values":
        return "x: [" + ", ".join("1" for _ in range(n)) + "]\n"
    if kind == "counts":
        count = rng.choice([10**6, 2**63 - 1, 2**63, 10**40, -5])
        return ("version: v1\nmig-configs:\n  a:\n    - devices: all\n      mig-enabled: true\n"
                f"      mig-devices: {{1g.10gb: {count}, 7g.80gb: {count}}}\n")
    if kind == "devices":
        return ("version: v1\nmig-configs:\n  a:\n    - devices: [" + ", ".join(str(i) for i in range(n)) + "]\n"
                "      mig-enabled: false\n")
    if kind == "clusters":
        return "".join(f"c{i}: {{backend: sim, nodes: 'p5.48xlarge*{rng.choice([1, 99999])}'}}\n"
                       for i in range(min(n, 30_000)))
    return "a: " + "x" * rng.choice([2**20, 3 * 2**20, 4 * 2**20 + 10]) + "\n"


def g_garbage(rng: random.Random) -> bytes:
    kind = rng.choice(["random", "elf", "zip", "nul", "high"])
    n = rng.choice([1, 17, 4096, 100_000])
    if kind == "elf":
        return b"\x7fELF\x02\x01\x01" + rng.randbytes(n)
    if kind == "zip":
        return b"PK\x03\x04" + rng.randbytes(n)
    if kind == "nul":
        return b"\x00" * n
    if kind == "high":
        return bytes(rng.randrange(0x80, 0x100) for _ in range(min(n, 4096)))
    return rng.randbytes(n)


def g_blank(rng: random.Random) -> str:
    return rng.choice(["", " ", "\t", "\n\n", "\r\n", " \t\n", "# comment\n", "---\n", "...\n", "--- !!null\n",
                       "~\n", "null\n", "\ufeff", "\ufeff \t\n", "---\n---\n", "a: 1\n---\nb: 2\n", "%YAML 1.1\n---\n"])


# ---- cases -------------------------------------------------------------------------------------------------
@dataclass
class Case:
    """One hostile input: where it came from and its bytes (or, for the 50 MB ones, how to write them)."""

    index: int
    kind: str
    data: bytes = b""
    big: bool = False  # written streaming, never held in memory

    def write(self, path: Path) -> None:
        if not self.big:
            path.write_bytes(self.data)
            return
        line = (self.data or b"# padding\n")
        with path.open("wb") as handle:
            written = 0
            while written < BIG:
                handle.write(line * 4096)
                written += len(line) * 4096


def make_case(seed: int, index: int, big_every: int) -> Case:
    """Case `index` of `seed` (independent of the other cases, so samples and reruns are exact)."""
    rng = random.Random(seed * 1_000_003 + index)
    if big_every and index % big_every == big_every - 1:
        return Case(index, "50MB", rng.choice([b"# padding\n", b"a: [1, 2, 3]\n", b"\xff\xfe\x00"]), big=True)
    roll = rng.random()
    if roll < 0.55:
        name, text = rng.choice(sorted(seeds_cached().items()))
        for mutate in rng.sample(TEXT_MUTATIONS, rng.randint(1, 3)):
            text = mutate(rng, text)
        data, encoding = encode(rng, text)
        if rng.random() < 0.15:
            data = rng.choice(BYTE_MUTATIONS)(rng, data)
        return Case(index, f"mutated {name} ({encoding})", data)
    if roll < 0.63:
        return Case(index, "alias bomb", g_alias_bomb(rng).encode())
    if roll < 0.70:
        return Case(index, "cycle", g_cycle(rng).encode())
    if roll < 0.78:
        return Case(index, "deep nesting", g_deep(rng).encode())
    if roll < 0.86:
        data, encoding = encode(rng, g_huge(rng))
        return Case(index, f"huge ({encoding})", data)
    if roll < 0.93:
        return Case(index, "binary garbage", g_garbage(rng))
    data, encoding = encode(rng, g_blank(rng))
    return Case(index, f"empty or whitespace ({encoding})", data)


_SEEDS: dict[str, str] = {}


def seeds_cached() -> dict[str, str]:
    if not _SEEDS:
        _SEEDS.update(seeds())
    return _SEEDS


# ---- running -----------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What one target did with one case."""

    case: int
    kind: str
    target: str
    seconds: float
    exit_code: int | None = None
    traceback: str | None = None  # an exception that escaped, or "Traceback" in the output
    internal: str | None = None  # exit 3: the kit's own "internal error"
    errors: list[str] = field(default_factory=list)  # error lines / messages
    unnamed: list[str] = field(default_factory=list)  # error lines that do not name the file
    located: dict[str, int] = field(default_factory=dict)  # validate --json errors: how many carry each field
    parses: bool = False  # the text decodes and parses as YAML within the kit's bounds


class _Timeout(BaseException):
    """A case still running after HANG_S (BaseException: nothing of the kit's may catch it)."""


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    def stop(signum: int, frame: Any) -> None:
        raise _Timeout()

    use_alarm = hasattr(signal, "setitimer") and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)
    if use_alarm:
        signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)


def _parses(path: Path) -> bool:
    from mig_conformance.common.errors import InputError
    from mig_conformance.common.yaml_source import load_yaml_file

    try:
        load_yaml_file(path)
    except InputError:
        return False
    return True


def _cli(argv: list[str], stdin: bytes | None = None) -> tuple[int, str, str]:
    from mig_conformance.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        sys.stdin = saved
    return code, out.getvalue(), err.getvalue()


def _error_lines(text: str, prefixes: tuple[str, ...]) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith(prefixes)]


def run_target(target: str, case: Case, path: Path, rng: random.Random, outcome: Outcome) -> None:
    """One target on one case; fills `outcome` (exit code, error lines and whether they name the file)."""
    name = str(path)
    if target == "config-file":
        from mig_conformance.common.errors import InputError
        from mig_conformance.plugin.checks import read_user_config
        from mig_conformance.plugin.settings import Settings

        try:
            read_user_config(Settings(config_file=path))
            outcome.exit_code = 0
        except InputError as exc:
            outcome.exit_code = 4  # the plugin's usage error
            outcome.errors = [str(p) for p in exc.problems]
        outcome.unnamed = [e for e in outcome.errors if name not in e]
        return
    stdin = None
    if target == "validate":
        argv = ["validate", name, "--instance-type", "p5.48xlarge"]
        roll = rng.random()
        if roll < 0.1:
            stdin, argv[1], name = case.data if not case.big else b"", "-", "<stdin>"
        extra = rng.choice([[], [], ["--json"], ["--json"], ["-c", "all-balanced"], ["-c", "training"],
                            ["--all-configs"] if rng.random() < 0.1 else []])
        argv += extra
    elif target == "mig-parted":
        argv = ["mig-parted", "apply", "-f", name, "-c", rng.choice(["all-balanced", "training", "a", "all-1g.10gb"]),
                "--instance-type", "p5.48xlarge"]
        if rng.random() < 0.05 and not case.big:
            stdin, argv[3], name = case.data, "-", "<stdin>"
    else:
        argv = ["clusters", "list", "--clusters-file", name]
    code, out, err = _cli(argv, stdin)
    outcome.exit_code = code
    if "Traceback (most recent call last)" in out + err:
        outcome.traceback = (out + err)[-2000:]
    if code == 3:
        outcome.internal = err.strip()[:500]
    if "--json" in argv and out.strip():
        doc = json.loads(out)
        errors = doc.get("errors") or [e for c in doc.get("configs", []) for e in c.get("errors", [])]
        outcome.errors = [e.get("message", "") for e in errors]
        outcome.unnamed = [e.get("message", "") for e in errors if e.get("file") != name]
        for e in errors:
            for key in ("line", "config", "entry", "key"):
                outcome.located[key] = outcome.located.get(key, 0) + (e.get(key) is not None)
        outcome.located["errors"] = len(errors)
        return
    if target == "mig-parted":
        outcome.errors = _error_lines(err, ("error:", "mig-conformance:"))
        failed_on_file = "Error parsing config file" in err or "Error selecting MIG config" in err
        read_error = "read error:" in err  # mig-parted's own words name the path
        if failed_on_file and not read_error and not outcome.errors:
            outcome.unnamed = [err.strip().splitlines()[0]]
    else:
        outcome.errors = _error_lines(out + err, ("error:",))
    outcome.unnamed += [e for e in outcome.errors if name not in e]


def run_case(case: Case, folder: Path, targets: tuple[str, ...] = TARGETS) -> list[Outcome]:
    path = folder / f"case-{case.index}.yaml"
    case.write(path)
    outcomes = []
    rng = random.Random(case.index)
    for target in targets:
        outcome = Outcome(case.index, case.kind, target, 0.0)
        t0 = time.perf_counter()
        try:
            with _deadline(HANG_S):
                run_target(target, case, path, rng, outcome)
        except _Timeout:
            outcome.traceback = f"still running after {HANG_S:.0f} s"
        except Exception as exc:  # escaped the CLI's main / the plugin's call: the kind of thing the fuzz looks for
            import traceback

            outcome.traceback = "".join(traceback.format_exception(exc))[-2000:]
        outcome.seconds = time.perf_counter() - t0
        outcomes.append(outcome)
    if any(o.located for o in outcomes) and not case.big:  # only then does it matter whether the text parses
        parses = _parses(path)
        for o in outcomes:
            o.parses = parses
    path.unlink()
    return outcomes


def peak_rss_mib() -> float:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_cases(seed: int, indices: range | list[int], folder: Path, big_every: int) -> tuple[list[Outcome], float]:
    """Every case of `indices` on every target; (outcomes, this process's peak RSS in MiB)."""
    outcomes: list[Outcome] = []
    for index in indices:
        outcomes += run_case(make_case(seed, index, big_every), folder)
    return outcomes, peak_rss_mib()


# ---- outside the process -----------------------------------------------------------------------------------
def run_subprocess(case: Case, folder: Path) -> Outcome:
    """`python -m mig_conformance validate` on the case as a real process: exit code and stderr only."""
    path = folder / f"sub-{case.index}.yaml"
    case.write(path)
    argv = [sys.executable, "-m", "mig_conformance", "validate", str(path), "--instance-type", "p5.48xlarge"]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=HANG_S, errors="replace")
        code, text = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired:
        code, text = None, f"still running after {HANG_S:.0f} s"
    outcome = Outcome(case.index, case.kind, "subprocess validate", time.perf_counter() - t0, exit_code=code)
    if code is None or code not in (0, 1, 2) or "Traceback" in text:
        outcome.traceback = text[-2000:]
    path.unlink()
    return outcome


def run_pytest(case: Case, folder: Path) -> Outcome:
    """A real pytest run with the case as --mig-config-file (a trivial test, on sim): exit 0, 1 or 4, never 3."""
    path = folder / f"pytest-{case.index}.yaml"
    case.write(path)
    (folder / "test_trivial.py").write_text("def test_ok():\n    pass\n")
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(folder),
            "--mig-cluster=sim:p5.48xlarge", f"--mig-config-file={path}", str(folder / "test_trivial.py")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIG_", "PYTEST_"))}
    t0 = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, errors="replace", env=env,
                              cwd=folder)
        code, text = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired:
        code, text = None, "still running after 120 s"
    outcome = Outcome(case.index, case.kind, "pytest --mig-config-file", time.perf_counter() - t0, exit_code=code)
    if code not in (0, 1, 4) or "Traceback" in text or "INTERNALERROR" in text:
        outcome.traceback = text[-2000:]
    path.unlink()
    return outcome


# ---- summary -----------------------------------------------------------------------------------------------
@dataclass
class Summary:
    cases: int
    runs: int
    tracebacks: list[Outcome]
    internal: list[Outcome]
    slowest: Outcome | None
    over: list[Outcome]
    errors: int
    unnamed: list[tuple[Outcome, str]]
    located: dict[str, int]

    def lines(self) -> list[str]:
        named = self.errors - len(self.unnamed)
        share = f"{named / self.errors:.1%}" if self.errors else "-"
        total = self.located.get("errors", 0)
        fields = ", ".join(f"{k} {self.located.get(k, 0) / total:.1%}" for k in ("line", "config", "entry", "key")) \
            if total else "-"
        slow = self.slowest
        out = [f"cases: {self.cases:,} ({self.runs:,} runs over {', '.join(TARGETS)})",
               f"tracebacks: {len(self.tracebacks)} (must be 0)",
               f"internal errors (exit 3): {len(self.internal)} (must be 0)",
               f"slowest run: {slow.seconds:.3f} s ({slow.target}, case {slow.case}: {slow.kind})" if slow else "",
               f"runs over {SLOW_S:.0f} s: {len(self.over)} (must be 0)",
               f"errors naming the file: {named:,} of {self.errors:,} ({share})",
               f"validate --json errors on text that parses as YAML ({total:,}): {fields}"]
        for o in self.tracebacks[:5] + self.internal[:5]:
            out.append(f"  case {o.case} ({o.kind}) on {o.target}: {(o.traceback or o.internal or '')[-600:]}")
        for o, line in self.unnamed[:5]:
            out.append(f"  case {o.case} ({o.kind}) on {o.target}: error without the file: {line[:300]}")
        return [line for line in out if line]


def summarize(outcomes: list[Outcome], cases: int) -> Summary:
    located: dict[str, int] = {}
    for o in outcomes:
        if o.parses:
            for key, n in o.located.items():
                located[key] = located.get(key, 0) + n
    return Summary(
        cases=cases, runs=len(outcomes),
        tracebacks=[o for o in outcomes if o.traceback],
        internal=[o for o in outcomes if o.internal],
        slowest=max(outcomes, key=lambda o: o.seconds, default=None),
        over=[o for o in outcomes if o.seconds > SLOW_S],
        errors=sum(len(o.errors) for o in outcomes) + sum(1 for o in outcomes if o.unnamed and not o.errors),
        unnamed=[(o, line) for o in outcomes for line in o.unnamed],
        located=located)
