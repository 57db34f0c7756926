"""The engine's fault points (imagenet2017_tfds/internal/faults.py): IMAGENET2017_FAULTS's
grammar, a typo refused rather than a fault silently never armed, the Nth reach in a process,
and a point armed in-process only inside its block."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from imagenet2017_tfds.internal import faults
from tests.conftest import ROOT, build_env

REACH_THREE_TIMES = """
from imagenet2017_tfds.internal import faults
for k in range(1, 4):
    print(k, flush=True)
    faults.point("shard-kept")
"""


def test_the_environments_grammar():
    assert faults.parse(" checkpoint-kept:kill@2, archive-read:fail ,") == {
        "checkpoint-kept": ("kill", 2),
        "archive-read": ("fail", 1),
    }
    assert faults.parse("") == {}


@pytest.mark.parametrize(
    "spec, message",
    [
        ("shard-kep:kill", "no fault point 'shard-kep'; the points are archive-read, "),
        (
            "shard-kept:explode",
            "'shard-kept:explode' is not NAME:ACTION[@N] with ACTION one of kill, fail",
        ),
        ("shard-kept:kill@0", "'shard-kept:kill@0' is not NAME:ACTION[@N]"),
        ("shard-kept", "'shard-kept' is not NAME:ACTION[@N]"),
    ],
)
def test_a_wrong_spec_is_refused_naming_it(spec, message):
    with pytest.raises(ValueError) as e:
        faults.parse(spec)
    assert message in str(e.value)


def _reach(spec: str) -> subprocess.CompletedProcess:
    env = dict(build_env(None), IMAGENET2017_FAULTS=spec)
    return subprocess.run(
        [sys.executable, "-c", REACH_THREE_TIMES],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_point_armed_by_the_environment_acts_the_nth_time_its_process_reaches_it():
    killed = _reach("shard-kept:kill@3")
    assert killed.returncode == -signal.SIGKILL and killed.stdout.split() == ["1", "2", "3"]
    failed = _reach("shard-kept:fail@2")
    assert failed.returncode == 1 and failed.stdout.split() == ["1", "2"]
    assert (
        failed.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "imagenet2017_tfds.internal.faults.FaultInjected: IMAGENET2017_FAULTS: shard-kept "
            "reached 2 time(s) in pid "
        )
    )
    unarmed = _reach("archive-read:kill")  # another point: this one is never reached
    assert unarmed.returncode == 0 and unarmed.stdout.split() == ["1", "2", "3"]


def test_a_point_armed_in_process_acts_inside_its_block_only():
    seen = []
    with faults.armed("disk-free", lambda folder: seen.append(folder) or ("/", 1)):
        assert faults.point("disk-free", "/data") == ("/", 1)
        with faults.armed("disk-free", lambda folder: None):  # nested: the inner one acts
            assert faults.point("disk-free", "/other") is None
        assert faults.point("disk-free", "/again") == ("/", 1)
    assert faults.point("disk-free", "/after") is None
    assert seen == ["/data", "/again"]
    with (
        pytest.raises(ValueError, match="no fault point 'disk-fre'"),
        faults.armed("disk-fre", print),
    ):
        pass
