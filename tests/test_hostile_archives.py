"""Hostile archives: the miniature CLS-LOC archive with one header made hostile (a size no
member has, a member of a GiB of zeros, a GiB of zeros after the end-of-archive marker, a
pax or GNU long-name header holding a GiB-long path), or cut in the gzip tail that follows
the tar's end. Each is refused with the package's error naming the archive and the byte,
and the build's peak memory stays far below what the headers declare (measured in a
process of its own, tests/support/measured_build.py). The archives' digests are unknown
(allow_unverified): the stream must refuse them, not the md5.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import subprocess
import sys
import tarfile

import pytest

from imagenet2017_tfds import testing
from imagenet2017_tfds.sources import tar
from tests.conftest import ROOT, build_env
from tests.support.mutate import members, tar_header, with_size_field, write_gzip

GiB, MiB = 1 << 30, 1 << 20
IMAGE = "ILSVRC/Data/CLS-LOC/train/n01440764/n01440764_1.JPEG"


def pax_header(path_bytes: int) -> tuple[bytes, bytes]:
    """A pax header holding a path of `path_bytes` bytes: its header block and the start of
    its record ("<length> path="), the path and a newline to follow."""
    length = path_bytes + len(" path=\n")
    length += len(str(length + len(str(length))))
    head = f"{length} path=".encode()
    return tar_header("././@PaxHeader", length, tarfile.XHDTYPE, tarfile.USTAR_FORMAT), head


def cases(clean: bytes) -> dict[str, tuple[list, str]]:
    """name -> (the archive's gzip pieces, what its error must say)."""
    at = members(clean)[5].start  # the hostile header comes after five members
    before, after = clean[:at], clean[at:]
    marker = members(clean)[-1].end
    pax, record = pax_header(GiB)
    pad = lambda n: bytes(-n % 512)  # noqa: E731
    absurd = {
        "octal size of 8 GiB": (b"77777777777\0", 8 * GiB - 1),
        "base-256 size of 2**88": (b"\x80" + (1 << 80).to_bytes(11, "big"), 1 << 80),
    }
    out = {
        name: (
            [before, with_size_field(tar_header(IMAGE, 0), field), after],
            rf"at byte {at} of the tar stream: the tar header of '{IMAGE}' declares {size} bytes",
        )
        for name, (field, size) in absurd.items()
    }
    out["negative base-256 size"] = (
        [before, with_size_field(tar_header(IMAGE, 0), b"\xff" * 12), after],
        rf"at byte {at} of the tar stream: damaged tar header \(a negative size\)",
    )
    out["member of a GiB of zeros"] = (
        [before + tar_header(IMAGE, GiB), (bytes(MiB), 1024), after],
        rf"at byte {at} of the tar stream: the tar header of '{IMAGE}' declares {GiB} bytes",
    )
    out["a GiB of zeros after the end"] = (
        [clean, (bytes(MiB), 1024)],
        rf"at byte {marker} of the tar stream: more than {tar.MAX_PADDING_BYTES} bytes follow",
    )
    out["pax path of a GiB"] = (
        [before + pax + record, (b"a" * MiB, 1024), b"\n" + pad(len(record) + 1) + after],
        rf"at byte {at} of the tar stream: a pax or GNU long-name header declares "
        rf"{GiB + len(record) + 1} bytes",
    )
    out["GNU long name of a GiB"] = (
        [
            before + tar_header("././@LongLink", GiB + 1, b"L"),
            (b"a" * MiB, 1024),
            b"\0" + pad(1) + after,
        ],
        rf"at byte {at} of the tar stream: a pax or GNU long-name header declares {GiB + 1}",
    )
    return out


def big_archive_members() -> dict[str, bytes]:
    """A member of 16 MB that is no release path (the build passes it by), so the compressed
    archive spans several of rapidgzip's chunks: the stream's end is not read ahead."""
    noise = random.Random(0).randbytes(16 * MiB).translate(bytes(b & 0x0F for b in range(256)))
    return {"extra/noise.bin": noise}


HOSTILE = [
    "octal size of 8 GiB", "base-256 size of 2**88", "negative base-256 size",
    "member of a GiB of zeros", "a GiB of zeros after the end", "pax path of a GiB",
    "GNU long name of a GiB",
]  # fmt: skip
TAIL_CUTS = (1, 4, 8, 12, 20)  # bytes cut off: the gzip trailer, then the deflated end marker


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, tuple[dict, str | None]]:
    """Every hostile archive built in one measured process: name -> its outcome, and what
    its error must say."""
    root = tmp_path_factory.mktemp("hostile")
    release = testing.write_release(root / "release", form="tarball", parts=("clsloc",))
    clean = gzip.decompress((release.manual_dir / testing.CLSLOC).read_bytes())
    folders, expected = {}, {}
    hostile = cases(clean)
    assert list(hostile) == HOSTILE
    for k, (name, (pieces, message)) in enumerate(hostile.items()):
        expected[name] = message
        folders[name] = root / f"case{k}"
        folders[name].mkdir()
        write_gzip(folders[name] / testing.CLSLOC, pieces)
    big = dict(release.members["clsloc"], **big_archive_members())
    whole = testing.tarball_bytes(big, seed=0)
    assert len(whole) > 8 * MiB
    for cut in (0, *TAIL_CUTS):
        folders[f"cut {cut}"] = root / f"cut{cut}"
        folders[f"cut {cut}"].mkdir()
        (folders[f"cut {cut}"] / testing.CLSLOC).write_bytes(whole[: len(whole) - cut])
    empty = root / "none.tsv"
    empty.write_text("filename\tsize\tmd5\tsha256\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.measured_build",
            "clsloc",
            str(root / "cache"),
            *map(str, folders.values()),
        ],
        env=build_env(empty),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return {name: (line, expected.get(name)) for name, line in zip(folders, lines, strict=True)}


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_header_is_refused_in_bounded_memory(name, outcomes):
    outcome, expected = outcomes[name]
    assert "error" in outcome, outcome
    kind, message = outcome["error"]
    assert kind == "ArchiveError"
    assert message.startswith(testing.CLSLOC), message
    assert re.search(expected, message), message
    assert message.endswith("download it again."), message
    # Far below the GiB the header declares: rapidgzip's buffers, never the declared data.
    assert outcome["peak_growth"] < tar.MAX_MEMBER_BYTES, outcome


def test_a_cut_in_the_gzip_tail_after_the_tars_end_is_found(outcomes):
    """The tar's end-of-archive marker comes before the gzip trailer (its CRC and length):
    a walk that stops at the marker never sees a cut there."""
    assert outcomes["cut 0"][0].get("built") == {"train": 14, "validation": 10, "test": 5}, outcomes
    for cut in TAIL_CUTS:
        outcome, _ = outcomes[f"cut {cut}"]
        assert "error" in outcome, (cut, outcome)
        kind, message = outcome["error"]
        assert kind == "ArchiveError" and testing.CLSLOC in message, (cut, message)
