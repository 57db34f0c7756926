"""A corruption matrix on the miniature release, seeded and repeatable.

Each archive's digest is unknown (allow_unverified), so the stream, not the md5, must catch
the damage. Every case ends one of two ways, and no other:
- the package's own error, naming the archive or a member the damage touched, its traceback
  the only one printed (no library's exception chained ahead of it), and nothing built; or
- a build whose every example equals the clean build's, but for examples of members the
  damage touched (found by decompressing the damaged archive leniently and comparing each
  tar member with the clean one), with none missing and none added.

The cases:
- `flip-<n>`: one byte of one archive (.tar.gz) XORed at a seeded position;
- `edge-<archive>-<byte>`: each byte of each archive's gzip header and trailer flipped;
- `tar-<n>`: one byte of the tar inside an archive flipped, then compressed again (a valid
  gzip stream: only the tar reader, the image and annotation checks and the plan can tell);
- `cut-<n>`: an archive cut at a seeded length, built through the builder (nothing loads).

The builds run the engine in this process with one worker (a few hundredths of a second
each); `cut-*` go through TFDS's builder, as a user's build does.
"""

from __future__ import annotations

import faulthandler
import gzip
import random
import shutil
import struct
import traceback
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from imagenet2017_tfds import testing
from imagenet2017_tfds.errors import ArchiveError, Imagenet2017Error
from imagenet2017_tfds.ilsvrc import tasks
from tests.conftest import api_build
from tests.support.mutate import members
from tests.support.readback import assert_nothing_loads

SEED = 2017
FLIPS, TAR_FLIPS, CUTS = 200, 100, 20
CONFIG = {"devkit": "clsloc", "clsloc": "clsloc", "det": "det", "det_test": "det"}
PARTS = sorted(CONFIG)
GZIP_HEADER, GZIP_TRAILER = 10, 8  # the release's gzip header has no optional field


@pytest.fixture(scope="module", autouse=True)
def no_digests(tmp_path_factory):
    """A checksums file that knows no archive: every build is allow_unverified."""
    empty = tmp_path_factory.mktemp("sums") / "none.tsv"
    empty.write_text("filename\tsize\tmd5\tsha256\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMAGENET2017_CHECKSUMS", str(empty))
        yield


@pytest.fixture(autouse=True)
def no_hang():
    """A case that hangs ends the run with every thread's traceback, not a stuck suite."""
    faulthandler.dump_traceback_later(300, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return testing.write_release(tmp_path_factory.mktemp("release"), form="tarball")


def archive(release, part: str) -> Path:
    return release.manual_dir / testing.ARCHIVES[part]


# ------------------------------------------------------------------ building and reading back


def read_tfrecords(path: str) -> list[bytes]:
    data, out, pos = Path(path).read_bytes(), [], 0
    while pos < len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        out.append(data[pos + 12 : pos + 12 + length])
        pos += 12 + length + 4
    return out


def file_name(record: bytes) -> str:
    from tensorflow.core.example import example_pb2

    feature = example_pb2.Example.FromString(record).features.feature
    return feature["file_name"].bytes_list.value[0].decode()


Examples = dict[str, dict[str, bytes]]  # split -> file name -> serialized example


def engine_build(manual: Path, config: str, cache: Path, **tuning) -> Examples:
    """The local engine on `manual`, as the builder runs it, with one worker (and `tuning`,
    fields of local.Options): every split's examples by file name."""
    import tensorflow_datasets as tfds

    from imagenet2017_tfds.engine import local
    from imagenet2017_tfds.internal.problems import Recorder

    options = local.Options(
        allow_unverified=True,
        workers=1,
        skip_space_check=True,
        shard_config=tfds.download.DownloadConfig().get_shard_config(),
        **tuning,
    )
    built = local.build(manual, tasks.task(config), cache, Recorder.for_build(False), options)
    out: Examples = {}
    for split, shards in built.shards.items():
        records = [r for s in shards for r in read_tfrecords(built.shard_file(s))]
        out[split] = {file_name(r): r for r in records}
        assert len(out[split]) == len(records), f"{split}: a file name twice"
    built.work.remove()
    return out


@pytest.fixture(scope="module")
def clean(release, tmp_path_factory) -> dict[str, Examples]:
    cache = tmp_path_factory.mktemp("clean-cache")
    out = {config: engine_build(release.manual_dir, config, cache) for config in ("clsloc", "det")}
    assert {s: len(v) for s, v in out["clsloc"].items()} == {
        "train": 14,
        "validation": 10,
        "test": 5,
    }
    assert {s: len(v) for s, v in out["det"].items()} == {"train": 9, "validation": 10, "test": 7}
    return out


# ------------------------------------------------------------------ what a change touched


def lenient_gunzip(data: bytes) -> bytes:
    """What a damaged .tar.gz decompresses to, up to where its deflate data stops making sense
    (the CRC and length are not checked)."""
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    out = []
    for i in range(GZIP_HEADER, len(data), 256):
        try:
            out.append(d.decompress(data[i : i + 256]))
        except zlib.error:
            break
        if d.eof:
            break
    return b"".join(out)


def touched(clean_tar: bytes, damaged_tar: bytes) -> dict[str, tuple[bytes, bytes]]:
    """Members whose header or data differ (or are gone): name -> (clean, damaged) bytes."""
    return {
        m.name: (clean_tar[m.start : m.end], damaged_tar[m.start : m.end])
        for m in members(clean_tar)
        if clean_tar[m.start : m.end] != damaged_tar[m.start : m.end]
    }


def explains(member: str, change: tuple[bytes, bytes], example: str) -> bool:
    """Whether a change of `member` can have changed the example named `example`: its image
    or annotation (same path but the extension), or a line of a list naming it."""
    image_id = example.rsplit(".", 1)[0]
    if member.rsplit(".", 1)[0].endswith(image_id):
        return True
    if member.startswith(("ImageSets/", "devkit/")):
        before, after = (set(b.splitlines()) for b in change)
        name = image_id.rsplit("/", 1)[-1].encode()
        return any(name in line for line in before ^ after)
    return False


# ------------------------------------------------------------------ the outcome of one case


@dataclass
class Case:
    part: str  # the archive damaged
    data: bytes  # its damaged bytes
    tar_before: bytes
    tar_after: bytes  # its tar, decompressed leniently

    @property
    def config(self) -> str:
        return CONFIG[self.part]

    @property
    def name(self) -> str:
        return testing.ARCHIVES[self.part]


def manual_with(release, case: Case, folder: Path) -> Path:
    shutil.copytree(release.manual_dir, folder)
    (folder / case.name).write_bytes(case.data)
    return folder


def assert_ours(error: BaseException, case: Case, changed: dict) -> None:
    """The package's error, naming the archive or a member the damage touched, printed alone."""
    assert isinstance(error, Imagenet2017Error), "".join(traceback.format_exception(error))
    message = str(error)
    named = [case.name, *changed]
    assert any(n in message for n in named), f"{message!r} names none of {named}"
    printed = "".join(traceback.format_exception(error))
    assert printed.count("Traceback (most recent call last)") == 1, printed


def assert_outcome(release, clean, case: Case, tmp_path) -> str:
    changed = touched(case.tar_before, case.tar_after)
    manual = manual_with(release, case, tmp_path / "manual")
    try:
        built = engine_build(manual, case.config, tmp_path / "cache")
    except Imagenet2017Error as e:
        assert_ours(e, case, changed)
        return "error"
    expected = clean[case.config]
    assert {s: sorted(v) for s, v in built.items()} == {s: sorted(v) for s, v in expected.items()}
    for split, examples in built.items():
        for name, record in examples.items():
            if record != expected[split][name]:
                why = [m for m, c in changed.items() if explains(m, c, name)]
                assert why, f"{split} {name} differs, but the damage touched only {sorted(changed)}"
    return "built"


# ------------------------------------------------------------------ the cases


def rng_for(kind: str, n: int) -> random.Random:
    return random.Random(f"{SEED}-{kind}-{n}")


@pytest.fixture(scope="module")
def tars(release) -> dict[str, bytes]:
    return {part: gzip.decompress(archive(release, part).read_bytes()) for part in PARTS}


def flipped(data: bytes, pos: int, xor: int) -> bytes:
    return data[:pos] + bytes([data[pos] ^ xor]) + data[pos + 1 :]


@pytest.mark.parametrize("n", range(FLIPS), ids=lambda n: f"flip-{n}")
def test_a_flipped_byte_of_an_archive(n, release, clean, tars, tmp_path):
    rng = rng_for("flip", n)
    part = rng.choice(PARTS)
    original = archive(release, part).read_bytes()
    data = flipped(original, rng.randrange(len(original)), rng.randrange(1, 256))
    case = Case(part, data, tars[part], lenient_gunzip(data))
    assert_outcome(release, clean, case, tmp_path)


EDGES = [(part, pos) for part in PARTS for pos in [*range(GZIP_HEADER), *range(-GZIP_TRAILER, 0)]]


@pytest.mark.parametrize("part, pos", EDGES, ids=[f"edge-{p}-{i}" for p, i in EDGES])
def test_a_flipped_byte_of_a_gzip_header_or_trailer(part, pos, release, clean, tars, tmp_path):
    original = archive(release, part).read_bytes()
    data = flipped(original, pos % len(original), rng_for(f"edge-{part}", pos).randrange(1, 256))
    outcome = assert_outcome(
        release, clean, Case(part, data, tars[part], lenient_gunzip(data)), tmp_path
    )
    if pos in (4, 5, 6, 7, 8, 9):  # the header's time, flags for the compressor and OS
        assert outcome == "built"
    if pos < 0:  # the trailer's CRC or length: the stream reads to its end and checks both
        assert outcome == "error"


@pytest.mark.parametrize("n", range(TAR_FLIPS), ids=lambda n: f"tar-{n}")
def test_a_flipped_byte_of_the_tar_inside_an_archive(n, release, clean, tars, tmp_path):
    rng = rng_for("tar", n)
    part = rng.choice(PARTS)
    damaged = flipped(tars[part], rng.randrange(len(tars[part])), rng.randrange(1, 256))
    case = Case(part, gzip.compress(damaged, mtime=0), tars[part], damaged)
    assert_outcome(release, clean, case, tmp_path)


@pytest.mark.parametrize("n", range(CUTS), ids=lambda n: f"cut-{n}")
def test_an_archive_cut_short(n, release, tmp_path, monkeypatch):
    rng = rng_for("cut", n)
    part = rng.choice(PARTS)
    original = archive(release, part).read_bytes()
    case = Case(part, original[: rng.randrange(len(original))], b"", b"")
    manual = manual_with(release, case, tmp_path / "manual")
    with pytest.raises(ArchiveError) as e:
        api_build(manual, tmp_path / "data", case.config, allow_unverified=True, workers=1)
    assert_ours(e.value, case, {})
    assert_nothing_loads(tmp_path / "data", case.config)


def test_a_stream_error_is_not_replaced_by_the_digest_it_cancelled(
    release, clean, tars, tmp_path, monkeypatch
):
    """With the archive's md5 known, the digest is read just behind the stream; the stream
    failing first cancels it, and the stream's error is the one reported, alone."""
    monkeypatch.setenv("IMAGENET2017_CHECKSUMS", str(release.checksums))
    original = archive(release, "clsloc").read_bytes()
    data = flipped(original, len(original) // 2, 0x55)
    case = Case("clsloc", data, tars["clsloc"], lenient_gunzip(data))
    with pytest.raises(ArchiveError, match="the gzip data is corrupt") as e:
        engine_build(
            manual_with(release, case, tmp_path / "manual"),
            "clsloc",
            tmp_path / "c",
            digest_ahead=0,  # the digest no further than the stream
        )
    assert_ours(e.value, case, {})
