"""TFDS's dataset folder `imagenet2017/` (the builder module `tfds build` finds from the
repository, its dummy_data/ in sync with the miniature release) and the dataset card
get_metadata() reads (README.md, CITATIONS.bib, TAGS.txt in imagenet2017_tfds/card/), which the
wheel ships where the installed builder finds it."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import imagenet2017_tfds
from tests.conftest import ROOT, pip_install
from tests.support import dummy_data

FOLDER = ROOT / "imagenet2017"
CARD = ROOT / "imagenet2017_tfds" / "card"


def _files(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_the_folder_holds_what_tfds_new_creates():
    for name in ("imagenet2017_dataset_builder.py", "imagenet2017_dataset_builder_test.py"):
        assert (FOLDER / name).is_file(), name
    assert (FOLDER / "dummy_data" / "ILSVRC" / "Data" / "CLS-LOC").is_dir()
    # The card has one copy, in the package.
    for name in ("README.md", "CITATIONS.bib", "TAGS.txt"):
        assert (CARD / name).is_file() and not (FOLDER / name).exists(), name


def test_dummy_data_is_what_tests_dummy_data_writes(tmp_path):
    release = dummy_data.write(tmp_path / "dummy_data")
    committed = _files(dummy_data.FOLDER)
    regenerated = _files(tmp_path / "dummy_data")
    assert sorted(committed) == sorted(regenerated), (
        "run: PYTHONPATH=. python -m tests.support.dummy_data"
    )
    changed = [name for name in committed if committed[name] != regenerated[name]]
    assert not changed, f"differ: {changed}; run: PYTHONPATH=. python -m tests.support.dummy_data"
    # The SPLITS of TFDS's test are the release's own answer key.
    from imagenet2017 import imagenet2017_dataset_builder_test as tfds_test

    sizes = dummy_data.split_sizes(release)
    assert sizes["clsloc"] == tfds_test.ClslocTest.SPLITS
    assert sizes["det"] == tfds_test.DetTest.SPLITS


def _expected_card():
    tags = [line.split("#")[0].strip() for line in (CARD / "TAGS.txt").read_text().splitlines()]
    return (
        (CARD / "README.md").read_text(),
        (CARD / "CITATIONS.bib").read_text(),
        [t for t in tags if t],
    )


def test_get_metadata_reads_the_card_from_the_package(tmp_path):
    from tensorflow_datasets.core import dataset_metadata

    from imagenet2017 import imagenet2017_dataset_builder
    from imagenet2017_tfds import Imagenet2017

    description, citation, tags = _expected_card()
    assert "clsloc" in description and "det" in description and "manual_dir" in description
    assert "@article{ILSVRC15," in citation and "10.1007/s11263-015-0816-y" in citation
    assert tags and set(tags) <= set(dataset_metadata.valid_tags())
    for cls in (Imagenet2017, imagenet2017_dataset_builder.Builder):
        metadata = cls.get_metadata()
        assert (metadata.description, metadata.citation, metadata.tags) == (
            description,
            citation,
            tags,
        )
    info = Imagenet2017(data_dir=tmp_path, config="det").info  # DatasetInfo strips them
    assert (info.description, info.citation) == (description.strip(), citation.strip())


def test_the_wheel_ships_the_card_and_the_installed_builder_reads_it(wheel, tmp_path):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for name in ("README.md", "CITATIONS.bib", "TAGS.txt"):
            assert z.read(f"imagenet2017_tfds/card/{name}") == (CARD / name).read_bytes()
    # Only imagenet2017_tfds is installed: the dataset folder, its test and dummy data stay in
    # the repository.
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {
        "imagenet2017_tfds"
    }
    site = tmp_path / "site"
    pip_install("--no-deps", "--target", str(site), str(wheel))
    code = (
        "import imagenet2017_tfds, tensorflow_datasets as tfds\n"
        "print(imagenet2017_tfds.Imagenet2017.pkg_dir_path)\n"
        "print(imagenet2017_tfds.Imagenet2017.get_metadata().citation)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folder, citation = result.stdout.split("\n", 1)
    assert folder == str(site / "imagenet2017_tfds" / "card")
    assert citation.rstrip("\n") == (CARD / "CITATIONS.bib").read_text().rstrip("\n")


def test_dataset_card(cli_builds):
    import tensorflow_datasets as tfds

    for config in ("clsloc", "det"):
        info = tfds.builder(f"imagenet2017/{config}", data_dir=str(cli_builds)).info
        assert "Russakovsky" in info.citation and "IJCV" in info.citation
        assert info.homepage.startswith("https://image-net.org")
        assert "ILSVRC2017" in info.description
        assert "non-commercial" in info.redistribution_info.license
    # The card has one source, which the README points to instead of repeating.
    readme = (ROOT / "README.md").read_text()
    assert "Russakovsky" not in readme and "terms of access" in readme.lower()
    builder = imagenet2017_tfds.Imagenet2017
    assert str(builder.VERSION) in builder.RELEASE_NOTES
