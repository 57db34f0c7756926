"""imagenet2017_tfds.testing as a user's own test uses it: write the miniature release, build
it with TFDS, load it, and find what the release's answer key says."""

from __future__ import annotations

import subprocess
import sys

import tensorflow_datasets as tfds

from imagenet2017_tfds import testing
from tests.conftest import ROOT


def test_a_user_builds_and_loads_the_miniature_release(tmp_path, monkeypatch):
    release = testing.write_release(tmp_path / "manual", parts=("clsloc",))
    assert sorted(p.name for p in release.manual_dir.iterdir()) == [testing.CLSLOC, "checksums.tsv"]
    monkeypatch.setenv("IMAGENET2017_CHECKSUMS", str(release.checksums))
    import imagenet2017_tfds  # noqa: F401  (registers the builder)

    config = tfds.download.DownloadConfig(manual_dir=str(release.manual_dir))
    ds = tfds.load(
        "imagenet2017/clsloc",
        split="validation",
        data_dir=str(tmp_path / "data"),
        download_and_prepare_kwargs={"download_config": config},
    )
    names = (
        tfds.builder("imagenet2017/clsloc", data_dir=str(tmp_path / "data"))
        .info.features["label"]
        .names
    )
    expected = release.expected["clsloc"]["validation"]
    seen = {}
    for ex in tfds.as_numpy(ds):
        name = ex["file_name"].decode()
        want = expected[name]
        assert names[ex["label"]] == want.label, name
        assert ex["image"].shape[:2] == want.size[::-1], name
        assert len(ex["objects"]["bbox"]) == len(want.objects), name
        seen[name] = bool(ex["blacklisted"])
    assert seen == {name: want.blacklisted for name, want in expected.items()}


def test_the_same_seed_writes_the_same_bytes_and_another_seed_other_images(tmp_path):
    first = testing.write_release(tmp_path / "a", parts=("det",), seed=3)
    again = testing.write_release(tmp_path / "b", parts=("det",), seed=3)
    other = testing.write_release(tmp_path / "c", parts=("det",), seed=4)
    archive = testing.DET
    assert (first.manual_dir / archive).read_bytes() == (again.manual_dir / archive).read_bytes()
    assert first.members["det"].keys() == other.members["det"].keys()
    assert first.members["det"] != other.members["det"]


def test_the_tree_form_is_what_tar_leaves(tmp_path):
    tarballs = testing.write_release(tmp_path / "tarballs", parts=("det", "det_test"))
    tree = testing.write_release(tmp_path / "tree", form="tree", parts=("det", "det_test"))
    import tarfile

    from_tar = {}
    for archive in (testing.DET, testing.DET_TEST):  # DET_test_new's test.txt replaces DET's
        with tarfile.open(tarballs.manual_dir / archive) as tar:
            for member in tar:
                from_tar[member.name] = tar.extractfile(member).read()
    written = {
        str(p.relative_to(tree.manual_dir)): p.read_bytes()
        for p in tree.manual_dir.rglob("*")
        if p.is_file()
    }
    assert written == from_tar


def test_importing_it_loads_neither_tensorflow_nor_pytest():
    code = (
        "import sys, imagenet2017_tfds.testing\n"
        "print(sorted(m for m in ('tensorflow', 'tensorflow_datasets', 'pytest', 'apache_beam')"
        " if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.stdout.strip() == "[]"
