"""End to end: miniature releases in the real layout, built with the real `tfds build` and the
Python API, every example checked against what the release holds."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from imagenet2017_tfds import errors, testing
from imagenet2017_tfds.ilsvrc import tasks
from imagenet2017_tfds.internal import faults
from tests.conftest import tfds_build
from tests.support import readback
from tests.support.readback import assert_nothing_loads


def check_examples(data_dir, release, config: str) -> None:
    lst = tasks.task(config).classes()
    expected_splits = release.expected[config]
    counts = readback.splits(data_dir, config)
    assert counts == {s: len(v) for s, v in expected_splits.items()}
    for split, expected in expected_splits.items():
        got = readback.examples(data_dir, config, split)
        assert sorted(got) == sorted(expected), split
        for name, want in expected.items():
            ex = got[name]
            where = f"{config}/{split}/{name}"
            if config == "clsloc":
                label = -1 if want.label is None else lst.index(want.label)
                assert ex["label"] == label, where
                assert bool(ex["blacklisted"]) == want.blacklisted, where
            assert bool(ex["annotated"]) == want.annotated, where
            objects = ex["objects"]
            assert [lst.wnids[i] for i in objects["label"]] == [o.wnid for o in want.objects], where
            np.testing.assert_allclose(
                objects["bbox"].reshape(-1, 4),
                np.array([o.bbox for o in want.objects], np.float32).reshape(-1, 4),
                atol=1e-6,
                err_msg=where,
            )
            if config == "det":
                assert [s.decode() for s in objects["subcategory"]] == [
                    o.subcategory or "" for o in want.objects
                ], where
                assert [bool(b) for b in objects["blacklisted"]] == [
                    o.blacklisted for o in want.objects
                ], where
            stored = ex["image"]
            if want.kind in ("jpeg_rgb", "jpeg_gray"):
                assert stored == want.data, f"{where}: not stored byte for byte"
            else:
                assert stored[:3] == b"\xff\xd8\xff", f"{where}: not re-encoded to JPEG"
                with Image.open(io.BytesIO(stored)) as im:
                    assert (im.mode, im.size) == ("RGB", want.size), where
                assert_same_picture(ex["pixels"], want.data, where)
            assert ex["pixels"].shape == (want.size[1], want.size[0], 3), where


def assert_same_picture(pixels: np.ndarray, source: bytes, where: str) -> None:
    """A re-encoded image shows the source's picture in RGB, within JPEG's loss: its
    brightness pixel by pixel, and its colours in 8x8 blocks (JPEG keeps half the colour
    resolution, and the release's images are noise, which it cannot keep finer). On these
    images a right re-encoding differs by under 2 (mean, of 255); the source's channels
    swapped by 5 (brightness) and 7 (colours), grey by 6 (colours), shifted by a pixel by 56
    (brightness), inverted by 80."""
    with Image.open(io.BytesIO(source)) as im:
        want = np.asarray(im.convert("RGB"), np.float64)
    got = np.asarray(pixels, np.float64)
    assert got.shape == want.shape, where
    luma = np.array([0.299, 0.587, 0.114])
    assert np.abs(got @ luma - want @ luma).mean() < 3, f"{where}: not the source's picture"
    h, w = got.shape[0] // 8 * 8, got.shape[1] // 8 * 8

    def blocks(a):
        return a[:h, :w].reshape(h // 8, 8, w // 8, 8, 3).mean(axis=(1, 3))

    assert np.abs(blocks(got) - blocks(want)).mean() < 3, f"{where}: not the source's colours"


@pytest.mark.parametrize("config", ["clsloc", "det"])
def test_cli_build_from_tarballs_holds_every_example(cli_builds, tarball_release, config):
    check_examples(cli_builds, tarball_release, config)


def api_build(release, config, data_dir, monkeypatch):
    import tensorflow_datasets as tfds

    import imagenet2017_tfds  # noqa: F401

    if release.checksums:
        monkeypatch.setenv("IMAGENET2017_CHECKSUMS", str(release.checksums))
    builder = tfds.builder(f"imagenet2017/{config}", data_dir=str(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(release.manual_dir))
    )
    return builder


@pytest.mark.parametrize("config", ["clsloc", "det"])
@pytest.mark.parametrize("release_name", ["tree_release", "flat_tree_release"])
def test_api_build_from_extracted_tree_gives_the_same_bytes(
    request, release_name, config, cli_builds, tmp_path, monkeypatch
):
    release = request.getfixturevalue(release_name)
    api_build(release, config, tmp_path, monkeypatch)
    check_examples(tmp_path, release, config)
    # Same examples, same keys: byte-identical shards whichever form the input took.
    assert readback.shard_bytes(tmp_path, config) == readback.shard_bytes(cli_builds, config)


def test_second_build_is_byte_identical_and_found_without_imports(
    cli_builds, tarball_release, tmp_path
):
    # From the repository root, `tfds build imagenet2017` finds the dataset folder itself.
    tfds_build(
        "clsloc", tarball_release.manual_dir, tmp_path, tarball_release.checksums, imports=False
    )
    first = readback.shard_bytes(cli_builds, "clsloc")
    assert first and readback.shard_bytes(tmp_path, "clsloc") == first


def test_max_examples_per_split_is_refused_before_anything_is_read(tmp_path, monkeypatch):
    full_release = testing.write_release(tmp_path / "manual", form="tarball")
    monkeypatch.setenv("IMAGENET2017_CHECKSUMS", str(full_release.checksums))
    builder = tfds.builder("imagenet2017/clsloc", data_dir=str(tmp_path / "data"))
    with (
        faults.armed("archive-read", lambda source: pytest.fail(f"{source.name} was read")),
        pytest.raises(errors.ConsistencyError) as e,
    ):
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(
                manual_dir=str(full_release.manual_dir), max_examples_per_split=3
            )
        )
    assert str(e.value) == (
        "imagenet2017/clsloc builds every example: max_examples_per_split=3 would keep a "
        "dataset the release's lists cannot vouch for. Build without it; to try the builder "
        "quickly, `make demo` builds a miniature release in a minute."
    )
    assert_nothing_loads(tmp_path / "data")


def test_nothing_loads_tells_no_dataset_from_a_dataset_or_its_leftovers(cli_builds, tmp_path):
    """The check the failure tests end with refuses a built dataset, its shards left in a
    folder TFDS would not load (as an incomplete one), and any error of tfds.load other than
    TFDS's for a dataset never prepared (here: a config the builder has not)."""
    data = tmp_path / "data"
    config_dir = data / "imagenet2017" / "clsloc"
    shutil.copytree(cli_builds / "imagenet2017" / "clsloc", config_dir)
    assert tfds.builder("imagenet2017/clsloc", data_dir=str(data)).info.splits["train"]
    with pytest.raises(AssertionError, match=f"{readback.VERSION} is there"):
        assert_nothing_loads(data)
    (config_dir / readback.VERSION).rename(config_dir / f"incomplete.x.{readback.VERSION}")
    with pytest.raises(AssertionError, match=r"imagenet2017-train\.tfrecord-00000-of-"):
        assert_nothing_loads(data)
    shutil.rmtree(config_dir)
    assert_nothing_loads(data)  # what a failed build leaves
    with pytest.raises(ValueError, match="BuilderConfig no_such_config not found"):
        assert_nothing_loads(data, "no_such_config")
