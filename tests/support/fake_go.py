"""A fake `go` for tests of `mig-conformance cluster install` (cluster/local/build.py) without the real 10-minute
build: it records every call (arguments, folder, the Go variables it got) as a JSON line in $FAKE_GO_LOG, answers
the `go version` / `go env` / `go list -m` questions the build asks, and for `go build -o OUT PKG` prints what
`go build -v` prints (downloads, packages) and writes a small executable OUT that reports a version.

Knobs (environment): FAKE_GO_VERSION (default go1.26.8), FAKE_GO_TOOLCHAIN (`go env GOTOOLCHAIN`, default auto),
FAKE_GO_FAIL (a package whose build fails), FAKE_GO_SLEEP ("PKG=SECONDS": that build takes so long),
FAKE_KWOK_DIR (the kwok module folder `go list -m -f {{.Dir}}` names; see `kwok_module`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mig_conformance.cluster.local.build import KWOK_STAGE_FILES
from support.executables import fake_executable

SCRIPT = r'''#!{python} -IS
import json, os, re, sys, time
args = sys.argv[1:]
env = os.environ
with open(env["FAKE_GO_LOG"], "a") as log:
    log.write(json.dumps({"args": args, "cwd": os.getcwd(), "pid": os.getpid(),
                          "env": {k: env.get(k) for k in ("GOMODCACHE", "GOCACHE", "GOFLAGS", "CGO_ENABLED",
                                                         "GOWORK", "GOTOOLCHAIN")}}) + "\n")
if args[:1] == ["version"]:
    print("go version " + env.get("FAKE_GO_VERSION", "go1.26.8") + " linux/amd64")
elif args[:2] == ["env", "GOTOOLCHAIN"]:
    print(env.get("FAKE_GO_TOOLCHAIN", "auto"))
elif args[:2] == ["list", "-m"]:
    module = args[-1]
    if "-json" in args:
        print(json.dumps({"Path": module, "Version": "v1.37.2", "Time": "2026-05-14T10:00:00Z"}))
    elif "{{.Dir}}" in args:
        print(env["FAKE_KWOK_DIR"])
    else:
        gomod = open("go.mod").read()
        print(re.search(re.escape(module) + r"\s+(v\S+)", gomod).group(1))
elif args[:1] == ["build"]:
    out, package = args[args.index("-o") + 1], args[-1]
    print("go: downloading example.com/dep v1.0.0", file=sys.stderr, flush=True)
    for rule in filter(None, env.get("FAKE_GO_SLEEP", "").split(",")):
        name, _, seconds = rule.partition("=")
        if name == package:
            print(package + "/internal/slow", file=sys.stderr, flush=True)
            time.sleep(float(seconds))
    if package == env.get("FAKE_GO_FAIL"):
        print(package + ": compile error: undefined: fake", file=sys.stderr)
        sys.exit(1)
    print(package, file=sys.stderr)
    name = package.rstrip("/").split("/")[-1]
    with open(out, "w") as f:
        f.write("#!/bin/sh\necho " + name + " version fake-" + package + "\n")
    os.chmod(out, 0o755)
else:
    print("fake go: unexpected arguments " + " ".join(args), file=sys.stderr)
    sys.exit(2)
'''


def fake_go(folder: Path) -> Path:
    """An executable `go` in `folder` (put the folder on PATH)."""
    return fake_executable(folder, "go", SCRIPT.replace("{python}", sys.executable))


def kwok_module(folder: Path) -> Path:
    """A kwok module folder with the stage files the build assembles into kwok-stages.yaml."""
    for name in KWOK_STAGE_FILES:
        path = folder / "kustomize" / "stage" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"kind: Stage\nmetadata:\n  name: {Path(name).stem}\n")
    return folder


def calls(log: Path) -> list[dict[str, object]]:
    """The recorded calls, oldest first."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def builds(log: Path) -> list[str]:
    """The packages `go build` was called for, in order."""
    out = []
    for call in calls(log):
        args = call["args"]
        assert isinstance(args, list)
        if args[:1] == ["build"]:
            out.append(str(args[-1]))
    return out
