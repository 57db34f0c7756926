"""checksums.tsv: format, the shipped published md5s, verification and its cached verdict; a
build whose archive disagrees with it (size, md5) or that it does not know stops before
anything is kept."""

import hashlib
import json
import os
import random
import shutil
from pathlib import Path

import pytest
import tensorflow_datasets as tfds

from imagenet2017_tfds import errors, testing
from imagenet2017_tfds.errors import ChecksumError
from imagenet2017_tfds.ilsvrc import checksums
from imagenet2017_tfds.internal import faults, fileio, resources
from imagenet2017_tfds.tools import cli
from tests.conftest import api_build, tfds_build
from tests.support.mutate import rewrite, wrong_md5
from tests.support.readback import assert_nothing_loads

ROOT = Path(__file__).parent.parent


def test_shipped_file_is_the_top_level_one_and_holds_the_published_md5s():
    assert resources.data("checksums.tsv") == (ROOT / "checksums.tsv").read_bytes()
    records = checksums.parse(resources.text("checksums.tsv"))
    assert records["ILSVRC2017_CLS-LOC.tar.gz"].md5 == "099d21920ef427c1bedc0d5d182277cf"
    assert records["ILSVRC2017_DET.tar.gz"].md5 == "237b95a860e9637b6a27683268cb305a"
    assert records["ILSVRC2017_DET_test_new.tar.gz"].md5 == "e9c3df2aa1920749a7ec35d1847280c6"
    assert records["ILSVRC2017_devkit.tar.gz"].digests() == {}


MD5, SHA = "0" * 31 + "a", "b" * 64
EXPECTED = checksums.Record("a.tar.gz", 12, MD5, SHA)


@pytest.mark.parametrize(
    "text",
    [
        f"# c\nfilename\tsize\tmd5\tsha256\na.tar.gz\t12\t{MD5.upper()}\t{SHA}\n",
        # as docs/building.md documents it: column names in a `#` comment, or no header at all
        f"# filename size md5 sha256\na.tar.gz\t12\t{MD5}\t{SHA}\n",
        f"# published digests\na.tar.gz\t12\t{MD5}\t{SHA}\n",
        # a header in another order, as a line or a comment
        f"sha256\tfilename\tmd5\tsize\n{SHA}\ta.tar.gz\t{MD5}\t12\n",
        f"#filename\tmd5\tsize\tsha256\na.tar.gz\t{MD5}\t12\t{SHA}\n",
        # spaces instead of tabs, where no cell is empty
        f"a.tar.gz  12 {MD5} {SHA}\n",
    ],
)
def test_every_documented_form_of_the_file_is_read(text):
    assert checksums.parse(text) == {"a.tar.gz": EXPECTED}


def test_empty_cells_are_unknown_and_a_short_line_too():
    text = f"filename\tsize\tmd5\tsha256\na.tar.gz\t\t{MD5}\t\nb.tar.gz\t5\n"
    assert checksums.parse(text) == {
        "a.tar.gz": checksums.Record("a.tar.gz", None, MD5, None),
        "b.tar.gz": checksums.Record("b.tar.gz", 5, None, None),
    }


@pytest.mark.parametrize(
    "text, message",
    [
        ("filename\tsize\tcrc32\na\t1\tx\n", "line 1: unknown column 'crc32'"),
        (f"# x\na.tar.gz\tbig\t{MD5}\n", "line 2: the size column must be a number.*'big'"),
        ("a.tar.gz\t1\tnot-hex\n", "line 1: the md5 of a.tar.gz must be 32 hex digits"),
        (f"a.tar.gz\t1\t{MD5}\t{MD5}\n", "line 1: the sha256 of a.tar.gz must be 64 hex"),
        (f"a.tar.gz\t1\t{MD5}\t{SHA}\textra\n", "line 1: 5 cells"),
    ],
)
def test_only_real_defects_are_errors_naming_the_line(text, message):
    with pytest.raises(ChecksumError, match=message):
        checksums.parse(text, "sums.tsv")


def test_format_round_trips():
    records = [checksums.Record("a", 1, MD5, None), checksums.Record("b", None, None, SHA)]
    parsed = checksums.parse(checksums.format_records(records))
    assert list(parsed.values()) == records


@pytest.fixture
def archive(tmp_path):
    path = tmp_path / "ILSVRC2017_DET.tar.gz"
    path.write_bytes(os.urandom(100_000))
    return path


def record(path, **changes):
    data = path.read_bytes()
    values = dict(
        size=len(data), md5=hashlib.md5(data).hexdigest(), sha256=hashlib.sha256(data).hexdigest()
    )
    values.update(changes)
    return checksums.Record(path.name, **values)


def test_verify_passes_and_caches_the_verdict(archive, tmp_path):
    v = checksums.Verifier(archive, record(archive), "test", tmp_path / "cache")
    assert v.needs_full_read(False) is True
    v.verify()
    assert v.needs_full_read(False) is False  # cached: no second read
    os.utime(archive, ns=(1, 1))  # touched: read again
    assert v.needs_full_read(False) is True


@pytest.mark.parametrize("field", ["md5", "sha256"])
def test_digest_mismatch_names_file_expected_and_found(archive, tmp_path, field):
    good = record(archive)
    v = checksums.Verifier(archive, record(archive, **{field: "0" * 8}), "test", tmp_path)
    with pytest.raises(ChecksumError) as e:
        v.verify()
    message = str(e.value)
    assert archive.name in message and "0" * 8 in message and getattr(good, field) in message
    assert not v.cache_file.exists()


def test_env_var_replaces_the_shipped_file(tmp_path, monkeypatch):
    other = tmp_path / "mine.tsv"
    other.write_text("filename\tsize\tmd5\tsha256\nx.tar.gz\t1\t\t\n")
    monkeypatch.setenv(checksums.ENV_VAR, str(other))
    records, origin = checksums.load()
    assert list(records) == ["x.tar.gz"] and origin == str(other)
    monkeypatch.setenv(checksums.ENV_VAR, str(tmp_path / "missing.tsv"))
    with pytest.raises(ChecksumError, match="no such file"):
        checksums.load()


def test_cli_writes_a_checksums_file_that_verifies(archive, tmp_path, monkeypatch, capsys):
    out = tmp_path / "sums.tsv"
    assert cli.main(["checksums", str(archive.parent), "-o", str(out)]) == 0
    assert checksums.parse(out.read_text())[archive.name] == record(archive)
    monkeypatch.setenv(checksums.ENV_VAR, str(out))
    assert cli.main(["verify", str(archive.parent)]) == 0
    assert "OK" in capsys.readouterr().out
    archive.write_bytes(b"changed")
    assert cli.main(["verify", str(archive.parent)]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_verdict_key_is_the_same_for_a_relative_and_an_absolute_path(tmp_path, monkeypatch):
    from etils import epath

    (tmp_path / "a.tar.gz").write_bytes(b"x" * 10)
    monkeypatch.chdir(tmp_path)
    relative = fileio.stat_key(epath.Path("a.tar.gz"))
    assert relative == fileio.stat_key(epath.Path(tmp_path / "a.tar.gz"))
    assert relative["size"] == 10


def _bytes_read() -> int:
    """What this process has read so far (its threads too), from Linux's /proc/self/io."""
    line = next(x for x in Path("/proc/self/io").read_text().splitlines() if x.startswith("rchar"))
    return int(line.split()[1])


def test_a_builds_verdict_spares_the_digests_read_until_the_archive_changes(tmp_path, monkeypatch):
    """Builds one after another in one data dir (the dataset removed in between, the cache
    kept): the second trusts the first's verdict and reads the archive once less than a
    build without it, and the verdict is not written again; the archive then changed in
    place (same size, its mtime put back) is read again and refused."""
    release = testing.write_release(tmp_path / "manual", form="tarball", parts=("clsloc",))
    noise = random.Random(0).randbytes(4 << 20).translate(bytes(b & 15 for b in range(256)))
    sums = rewrite(release, "clsloc", {"extra/noise.bin": noise})  # its reads outweigh the rest
    archive, data = release.manual_dir / testing.CLSLOC, tmp_path / "data"
    verdict = data / "downloads" / "imagenet2017" / f"verdict-{testing.CLSLOC}.json"

    def build() -> int:
        shutil.rmtree(data / "imagenet2017", ignore_errors=True)
        before = _bytes_read()
        api_build(release.manual_dir, data, checksums=sums, monkeypatch=monkeypatch, workers=1)
        return _bytes_read() - before

    build()
    written = verdict.stat()
    reused = build()
    assert (verdict.stat().st_ino, verdict.stat().st_mtime_ns) == (
        written.st_ino,
        written.st_mtime_ns,
    )
    verdict.unlink()
    read_again = build()
    size = archive.stat().st_size
    assert 0.95 * size < read_again - reused < 1.05 * size, (read_again, reused, size)
    # Other bytes under the same name, size and mtime: the verdict is not trusted.
    st = archive.stat()
    with open(archive, "r+b") as f:
        f.seek(size // 2)
        flipped = bytes([f.read(1)[0] ^ 0xFF])
        f.seek(size // 2)
        f.write(flipped)
    os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (archive.stat().st_size, archive.stat().st_mtime_ns) == (size, st.st_mtime_ns)
    with pytest.raises(ChecksumError, match=rf"{archive}: md5 mismatch"):
        build()


@pytest.fixture
def full_release(tmp_path):
    return testing.write_release(tmp_path / "manual", form="tarball")


def test_md5_mismatch_stops_the_cli_build_and_writes_nothing(full_release, tmp_path):
    bad, actual_md5 = wrong_md5(full_release.checksums, testing.CLSLOC, tmp_path)
    result = tfds_build("clsloc", full_release.manual_dir, tmp_path / "data", bad, check=False)
    assert result.returncode != 0
    assert "ChecksumError" in result.stderr
    assert f"{testing.CLSLOC}: md5 mismatch: expected {'0' * 32}" in result.stderr
    assert f"found {actual_md5}" in result.stderr
    assert_nothing_loads(tmp_path / "data")


def test_size_mismatch_is_reported_before_any_read(full_release, tmp_path, monkeypatch):
    size = (full_release.manual_dir / testing.CLSLOC).stat().st_size
    text = full_release.checksums.read_text().splitlines()
    text = [
        f"{testing.CLSLOC}\t12\t\t" if line.startswith(testing.CLSLOC) else line for line in text
    ]
    bad = tmp_path / "bad.tsv"
    bad.write_text("\n".join(text) + "\n")
    with (
        faults.armed("archive-read", lambda source: pytest.fail(f"{source.name} was read")),
        pytest.raises(errors.ChecksumError, match=f"expected 12 bytes.*found {size}"),
    ):
        api_build(
            full_release.manual_dir, tmp_path / "data", checksums=bad, monkeypatch=monkeypatch
        )
    assert_nothing_loads(tmp_path / "data")


def test_unknown_digest_needs_the_opt_out(full_release, tmp_path, monkeypatch):
    empty = tmp_path / "empty.tsv"
    empty.write_text("filename\tsize\tmd5\tsha256\n")
    with pytest.raises(errors.ChecksumError, match="allow_unverified"):
        api_build(full_release.manual_dir, tmp_path / "a", checksums=empty, monkeypatch=monkeypatch)
    assert_nothing_loads(tmp_path / "a")
    # The opt-out as `tfds build` passes it: a JSON config.
    options = json.dumps({"name": "clsloc", "allow_unverified": True})
    tfds_build(options, full_release.manual_dir, tmp_path / "b", empty)
    assert (
        tfds.builder("imagenet2017/clsloc", data_dir=str(tmp_path / "b"))
        .info.splits["train"]
        .num_examples
        == 14
    )
