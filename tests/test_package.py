"""The installable package: what `pip install .` puts on a user's machine, and a user's
first build with it, in a venv of its own, from a folder outside the repository."""

import ast
import json
import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from packaging.specifiers import SpecifierSet

from tests.conftest import ROOT


def test_wheel_ships_data_entry_point_and_runtime_dependencies(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = next(n for n in names if n.endswith("METADATA"))
        metadata = z.read(meta).decode()
        entry_points = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
        shipped_checksums = z.read("imagenet2017_tfds/data/checksums.tsv")
    for data in (
        "map_clsloc.txt",
        "map_det.txt",
        "LOC_synset_mapping.txt",
        "ILSVRC2015_clsloc_validation_ground_truth.txt",
        "ILSVRC2015_clsloc_validation_blacklist.txt",
        "ILSVRC2015_det_validation_blacklist.txt",
    ):
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
    assert "imagenet2017-tfds = imagenet2017_tfds.tools.cli:main" in entry_points


def _setup_kwargs() -> dict:
    call = next(
        node
        for node in ast.walk(ast.parse((ROOT / "setup.py").read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup"
    )
    return {k.arg: k.value for k in call.keywords}


def test_requirements_pin_what_setup_py_requires():
    pinned = {
        line.split("==")[0].split("[")[0].strip().lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    kwargs = _setup_kwargs()
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
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def test_importing_the_package_registers_the_builder_whichever_comes_first():
    registered = "print('imagenet2017' in tfds.list_builders(with_community_datasets=False))"
    assert (
        _python(f"import imagenet2017_tfds\nimport tensorflow_datasets as tfds\n{registered}")
        == "True"
    )
    assert (
        _python(f"import tensorflow_datasets as tfds\nimport imagenet2017_tfds\n{registered}")
        == "True"
    )
    assert (
        _python("from imagenet2017_tfds import Imagenet2017\nprint(Imagenet2017.name)")
        == "imagenet2017"
    )


def test_command_line_tools_start_without_tfds_or_tensorflow():
    loaded = _python(
        "import sys, imagenet2017_tfds.tools.cli\n"
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
    from imagenet2017_tfds.dataset import builder
    from tests.support import readback

    assert str(builder.Imagenet2017.VERSION) == readback.VERSION


def test_setup_py_allows_exactly_the_beam_releases_beam_builds_accept():
    from imagenet2017_tfds import compat

    (beam,) = [
        d
        for d in ast.literal_eval(_setup_kwargs()["install_requires"])
        if d.startswith("apache-beam")
    ]
    allowed = SpecifierSet(beam.removeprefix("apache-beam"))
    assert all(spec.operator == "==" for spec in allowed), beam
    assert {spec.version for spec in allowed} == set(compat.BEAM_VERIFIED)


def test_the_package_and_the_dataset_each_have_one_version():
    import imagenet2017_tfds
    from imagenet2017_tfds.dataset import builder

    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {imagenet2017_tfds.__version__}\n" in changelog
    assert str(builder.Imagenet2017.VERSION) in builder.Imagenet2017.RELEASE_NOTES
    # Wherever the docs show a build's folder, it is the dataset's version.
    shown = set()
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        shown |= set(re.findall(r"imagenet2017/(?:clsloc|det)/(\d+\.\d+\.\d+)", doc.read_text()))
    assert shown == {str(builder.Imagenet2017.VERSION)}


def test_a_user_installs_the_wheel_builds_and_loads(wheel, tarball_release, tmp_path):
    """pip install of the wheel into a new venv (reusing this venv's packages: TensorFlow is not
    downloaded again), then, outside the repository, the README's `tfds build` and `tfds.load`."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # This venv's packages after the new venv's own (its .pth files processed too).
    Path(site, "dev-venv.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n"
    )
    user = tmp_path / "user"
    user.mkdir()
    # Nothing of the repository: not on the path, not the current folder.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}",
        TF_CPP_MIN_LOG_LEVEL="2",
        IMAGENET2017_CHECKSUMS=str(tarball_release.checksums),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        cwd=user,
        env=env,
        check=True,
        capture_output=True,
    )

    def run(*command):
        result = subprocess.run(
            command, cwd=user, env=env, capture_output=True, text=True, timeout=900, check=False
        )
        assert result.returncode == 0, result.stderr[-4000:]
        return result.stdout

    where = run(
        python,
        "-c",
        "import imagenet2017_tfds, importlib.util; "
        "print(imagenet2017_tfds.__file__, importlib.util.find_spec('imagenet2017'))",
    )
    assert where.split() == [f"{site}/imagenet2017_tfds/__init__.py", "None"]
    # The launcher's subcommand is there too (its --help needs neither TensorFlow nor Java).
    assert "--runner" in run(venv / "bin" / "imagenet2017-tfds", "beam-build", "--help")
    tfds = "from tensorflow_datasets.scripts.cli.main import launch_cli; launch_cli()"
    build = ["build", "imagenet2017", "--imports", "imagenet2017_tfds", "--config", "clsloc"]
    run(
        python,
        "-c",
        tfds,
        *build,
        "--manual_dir",
        tarball_release.manual_dir,
        "--data_dir",
        user / "data",
    )
    counts = run(
        python,
        "-c",
        (
            "import json, sys, tensorflow_datasets as tfds, imagenet2017_tfds\n"
            "splits = tfds.builder('imagenet2017/clsloc', data_dir=sys.argv[1]).info.splits\n"
            "print(json.dumps({s: sum(1 for _ in tfds.load('imagenet2017/clsloc', split=s, "
            "data_dir=sys.argv[1])) for s in splits}))"
        ),
        str(user / "data"),
    )
    expected = {
        split: len(examples) for split, examples in tarball_release.expected["clsloc"].items()
    }
    assert json.loads(counts) == expected
