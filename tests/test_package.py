"""The installable package: what `pip install .` puts on a user's machine."""

import ast
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT


def test_wheel_ships_data_entry_point_and_runtime_dependencies(wheel):
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
    assert not any(n.startswith("tests/") for n in names)  # imagenet2017/: test_dataset_folder
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
        "filelock",
        "mlcroissant",
        "importlib_resources",
    ):
        assert any(r.replace("_", "-").startswith(dep.replace("_", "-")) for r in requires), dep
    # Only a tool needs these: extras, each named by the tool's message when missing.
    for extra, dep in (("bench", "psutil"), ("show", "matplotlib"), ("grain", "grain")):
        assert f'{dep}; extra == "{extra}"' in requires, (extra, dep)
        assert dep not in requires, dep
    assert "imagenet2017-tfds = imagenet2017_tfds.cli:main" in entry_points


def test_requirements_pin_what_setup_py_requires():
    pinned = {
        line.split("==")[0].split("[")[0].strip().lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    call = next(
        node for node in ast.walk(ast.parse((ROOT / "setup.py").read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup"
    )  # fmt: skip
    kwargs = {k.arg: k.value for k in call.keywords}
    deps = ast.literal_eval(kwargs["install_requires"])
    for extra in ast.literal_eval(kwargs["extras_require"]).values():
        deps += extra  # the dev venv installs every extra too
    required = {re.split(r"[<>=\[;]", d)[0].strip().lower() for d in deps}
    assert "filelock" in required and "grain" in required
    assert required <= pinned, required - pinned


def test_dataset_folder_for_tfds_build_without_imports_exists():
    module = Path(ROOT, "imagenet2017", "imagenet2017_dataset_builder.py").read_text()
    assert "class Builder(" in module


def _python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def test_importing_the_package_registers_the_builder_whichever_comes_first():
    registered = "print('imagenet2017' in tfds.list_builders(with_community_datasets=False))"
    assert _python(f"import imagenet2017_tfds\nimport tensorflow_datasets as tfds\n{registered}") == "True"  # fmt: skip
    assert _python(f"import tensorflow_datasets as tfds\nimport imagenet2017_tfds\n{registered}") == "True"  # fmt: skip
    assert _python("from imagenet2017_tfds import Imagenet2017\nprint(Imagenet2017.name)") == "imagenet2017"  # fmt: skip


def test_command_line_tools_start_without_tfds_or_tensorflow():
    loaded = _python(
        "import sys, imagenet2017_tfds.cli\n"
        "print(sorted(m for m in ('tensorflow', 'tensorflow_datasets') if m in sys.modules))"
    )
    assert loaded == "[]"


def test_making_a_builder_leaves_no_temporary_folder(tmp_path, monkeypatch):
    import tempfile

    from imagenet2017_tfds import Imagenet2017

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    builder = Imagenet2017(data_dir=tmp_path / "data", config="clsloc")
    assert builder.info.features["label"].num_classes == 1000
    assert list(scratch.iterdir()) == []


def test_the_tests_version_folder_is_the_builders():
    from imagenet2017_tfds import builder
    from tests import readback

    assert str(builder.Imagenet2017.VERSION) == readback.VERSION
