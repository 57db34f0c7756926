"""The installable package: what `pip install .` puts on a user's machine."""

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT


def test_wheel_ships_data_entry_point_and_runtime_dependencies(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("imagenet2017_tfds-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = next(n for n in names if n.endswith("METADATA"))
        metadata = z.read(meta).decode()
        entry_points = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
        shipped_checksums = z.read("imagenet2017_tfds/data/checksums.tsv")
    for data in ("map_clsloc.txt", "map_det.txt", "LOC_synset_mapping.txt",
                 "ILSVRC2015_clsloc_validation_ground_truth.txt",
                 "ILSVRC2015_clsloc_validation_blacklist.txt",
                 "ILSVRC2015_det_validation_blacklist.txt"):  # fmt: skip
        assert f"imagenet2017_tfds/data/{data}" in names
    assert shipped_checksums == (ROOT / "checksums.tsv").read_bytes()
    assert not any(n.startswith(("tests/", "imagenet2017/")) for n in names)
    requires = [
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    ]
    for dep in (
        "tensorflow",
        "tensorflow-datasets",
        "apache-beam",
        "lxml",
        "rapidgzip",
        "mlcroissant",
        "importlib_resources",
    ):
        assert any(r.replace("_", "-").startswith(dep.replace("_", "-")) for r in requires), dep
    assert "imagenet2017-tfds = imagenet2017_tfds.cli:main" in entry_points


def test_requirements_pin_what_setup_py_requires():
    pinned = {
        line.split("==")[0].split("[")[0].strip().lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    setup = (ROOT / "setup.py").read_text()
    start = setup.index("install_requires=[")
    block = setup[start : setup.index("]", start)]
    required = {r.split(">")[0].split("[")[0].strip().lower() for r in block.split('"')[1::2]}
    assert required <= pinned, required - pinned


def test_dataset_folder_for_tfds_build_without_imports_exists():
    module = Path(ROOT, "imagenet2017", "imagenet2017_dataset_builder.py").read_text()
    assert "class Builder(" in module
