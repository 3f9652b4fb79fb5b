"""Every hostile program of ``selfbake.tools.sandbox_hostile`` is contained, as root and as an
unprivileged user.

Each mode runs the whole catalogue in a child process -- the "caller" whose environment
holds the secret, whose files, listeners and decoy process the programs attack -- as the
test's own user and, when that is root (as here and in CI), again as ``nobody`` on a copy
of the sandbox, so the layers that must hold without root are exercised, not skipped.
The programs run four at a time; the two modes take about 25 s together.
"""

import importlib.util
import os

import pytest

from selfbake.tools import sandbox_audit
from selfbake.tools.sandbox_hostile import hostile_programs

ROOT = os.geteuid() == 0
CASES = [case.name for case in hostile_programs()] + ["no sandboxed process left"]
MODES = ["caller", "nobody"]


@pytest.fixture(scope="module")
def runs() -> dict[str, list[dict]]:
    modes = {"caller": sandbox_audit.audit_as(os.geteuid(), os.getegid())}
    if ROOT:
        modes["nobody"] = sandbox_audit.audit_as(65534, 65534)
    return modes


def test_the_catalogue_has_at_least_30_hostile_programs():
    assert len(CASES) >= 30 and len(set(CASES)) == len(CASES)


@pytest.mark.parametrize("mode", MODES)
def test_the_expected_layers_held(runs, mode):
    if mode not in runs:
        pytest.skip("dropping to nobody needs root")
    layers = {
        row["isolation"] for row in runs[mode] if row["isolation"] and row["isolation"] != "not started"
    }
    assert len(layers) == 1, layers
    held = set(layers.pop().split("+"))
    assert {"netns", "ipcns", "mountns", "pidns", "nnp"} <= held
    assert ("uid" if ROOT and mode == "caller" else "userns") in held
    if importlib.util.find_spec("pyseccomp") is not None and os.path.exists(
        "/lib/x86_64-linux-gnu/libseccomp.so.2"
    ):
        assert "seccomp" in held


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mode", MODES)
def test_hostile_program_is_contained(runs, mode, case):
    if mode not in runs:
        pytest.skip("dropping to nobody needs root")
    row = next(r for r in runs[mode] if r["case"] == case)
    assert row["contained"], (
        f"{case} as {mode}: failed {row['failed']} ({row['evidence']}; {row['isolation']})"
    )
