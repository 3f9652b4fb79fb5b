"""Hostile programs against ``run_code``, each with the containment it must meet.

Why in the package: the sandbox's layers depend on the kernel and on who runs
it, so the claim "contained" is only as good as a run on the machine at hand.
``python -m selfbake.tools.sandbox_audit`` runs every program here against the
caller's own secrets, files, listeners and processes and prints the table (as
root it also re-runs itself as an unprivileged user, ``nobody``, so the layers
that hold without root are checked too; ``--json`` writes the rows). The tests
(tests/test_sandbox_hostile.py) assert every row in both modes.

Each case plants what it attacks in the calling process -- a secret in the
caller's own environment, a TCP, UDP, filesystem and abstract UNIX listener, a
decoy process with an API key in its command line, private files -- and checks
afterwards, from outside, that the attack did not land. Stdlib only (plus the
sandbox), so a copy runs under a bare interpreter as another user.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from selfbake.tools.sandbox import ExecResult, run_code
from selfbake.tools.sandbox_hostile import Case, gone, host_processes_with, hostile_programs
from selfbake.tools.sandbox_targets import Context

PRELUDE_SIGNATURE = "network access is disabled in the selfbake sandbox"  # in every sandboxed command line


def _options(case: Case, ctx: Context) -> dict:
    options = dict(case.options)
    if "files" in options:
        options["files"] = {name.format(tag=ctx.tag): text for name, text in options["files"].items()}
    return options


def _evidence(result: ExecResult) -> str:
    """A short excerpt of what happened, for the table."""
    if result.stdout_truncated:
        return f"stdout cut at {len(result.stdout)} characters"
    if result.killed_reason:
        return result.killed_reason
    lines = result.stdout.strip().splitlines()
    if not result.ok and result.stderr.strip():
        lines = [result.stderr.strip().splitlines()[-1]]
    text = "; ".join(lines[:2]).replace("\0", " ").replace("\t", " ")
    return text[:70] or "(no output)"


def run_case(case: Case, ctx: Context) -> dict:
    fields = dict(
        vars(ctx), dir=str(ctx.dir), precious=str(ctx.precious), key=str(ctx.key), decoy_pid=ctx.decoy.pid
    )
    fields["marker"] = ctx.marker(case.name)
    code = case.code.format(**fields)
    result = run_code(code, **_options(case, ctx))
    failed = case.check(result, ctx)
    evidence = _evidence(result)
    return {
        "case": case.name,
        "threat": case.threat,
        "holds": case.holds,
        "contained": not failed,
        "failed": failed,
        "evidence": evidence,
        "isolation": result.isolation,
        "seconds": result.seconds,
    }


def audit(workers: int = 4, only: list[str] | None = None) -> list[dict]:
    """Every case (or those named in ``only``) against this process's own planted targets, in case order."""
    ctx = Context()
    cases = [case for case in hostile_programs() if only is None or case.name in only]
    try:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            rows = list(pool.map(lambda case: run_case(case, ctx), cases))
        gone(PRELUDE_SIGNATURE)
        leftovers = host_processes_with(PRELUDE_SIGNATURE)
        rows.append(
            {
                "case": "no sandboxed process left",
                "threat": "after all of the above",
                "holds": "none running",
                "contained": not leftovers,
                "failed": ["leftovers"] if leftovers else [],
                "evidence": f"{len(leftovers)} left",
                "isolation": "",
                "seconds": 0.0,
            }
        )
        return rows
    finally:
        ctx.close()


def _copy_for(user_dir: Path) -> Path:
    """A minimal copy of the sandbox (and pyseccomp) another user can import."""
    import importlib.util

    here = Path(__file__).resolve().parent
    package = user_dir / "selfbake"
    (package / "tools").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "tools" / "__init__.py").write_text("")
    shutil.copy(here.parent / "errors.py", package / "errors.py")
    for name in (
        "sandbox.py",
        "_sandbox_launcher.py",
        "sandbox_audit.py",
        "sandbox_hostile.py",
        "sandbox_targets.py",
    ):
        shutil.copy(here / name, package / "tools" / name)
    found = importlib.util.find_spec("pyseccomp")
    if found and found.origin:
        shutil.copy(found.origin, user_dir / "pyseccomp.py")
    return user_dir


def audit_as(uid: int = 65534, gid: int = 65534, timeout_s: float = 300) -> list[dict]:
    """Run the audit in a child process as ``uid`` (from root: an unprivileged user), on a fresh copy."""
    from selfbake.tools.sandbox import _world_executable

    base = next(
        (b for b in ("/srv", "/opt", "/var/cache") if os.path.isdir(b) and not os.path.islink(b)), None
    )
    work = Path(tempfile.mkdtemp(prefix="selfbake-audit-user-", dir=base))  # outside the masked places
    try:
        _copy_for(work)
        (work / "home").mkdir()
        work.chmod(
            0o755
        )  # the world-writable target dir inside must be reachable: only read-only mounts guard it
        for path in [work, *work.rglob("*")]:
            os.chown(path, uid, gid)
        python = (
            sys.executable if uid == os.geteuid() or _world_executable(sys.executable) else "/usr/bin/python3"
        )
        script = (
            f"import sys, json; sys.path.insert(0, {str(work)!r}); "
            "from selfbake.tools import sandbox_audit as a; print(json.dumps(a.audit()))"
        )
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(work / "home"),
            "LANG": "C.UTF-8",
            "SELFBAKE_AUDIT_DIR": str(work),
            "HF_TOKEN": "hf_" + secrets.token_hex(12),  # the secret, in the caller's real environment
        }
        drop = {} if uid == os.geteuid() else {"user": uid, "group": gid, "extra_groups": []}
        done = subprocess.run(
            [python, "-I", "-c", script],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=work,
            env=env,
            **drop,
        )
        if done.returncode != 0:
            raise RuntimeError(f"audit as uid {uid} failed: {done.stderr.strip()[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def table(modes: dict[str, list[dict]]) -> str:
    """Markdown: one row per hostile program, one column per mode."""
    names = list(modes)
    lines = [
        "| # | hostile program | what must hold | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for i, row in enumerate(modes[names[0]], 1):
        cells = []
        for name in names:
            other = next(r for r in modes[name] if r["case"] == row["case"])
            verdict = "contained" if other["contained"] else "NOT CONTAINED: " + ", ".join(other["failed"])
            cells.append(f"{verdict} ({other['evidence'].replace('|', '/')})")
        lines.append(
            f"| {i} | **{row['case']}**: {row['threat']} | {row['holds']} | " + " | ".join(cells) + " |"
        )
    layers = {
        name: next((r["isolation"] for r in rows if r["isolation"]), "") for name, rows in modes.items()
    }
    lines.append("")
    lines.append("Layers: " + "; ".join(f"{name}: `{value}`" for name, value in layers.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m selfbake.tools.sandbox_audit", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--no-user", action="store_true", help="as root, skip the unprivileged re-run")
    args = parser.parse_args(argv)
    me = "root" if os.geteuid() == 0 else "not root"
    if os.geteuid() == 0 and "SELFBAKE_AUDIT_DIR" not in os.environ:
        os.environ["SELFBAKE_AUDIT_DIR"] = next(
            b for b in ("/srv", "/opt", "/var/cache", "/tmp") if os.path.isdir(b)
        )
    modes = {me: audit()}
    if os.geteuid() == 0 and not args.no_user:
        modes["not root (nobody)"] = audit_as()
    if args.json:
        Path(args.json).write_text(json.dumps(modes, indent=1))
    print(table(modes))
    return 0 if all(r["contained"] for rows in modes.values() for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
