"""The table of configs (tasks.py): a config is one Task object carrying its archives, and
adding one edits no module. Two configs the package does not ship, defined here only, are
found, verified, scanned and planned on the miniature release like the shipped ones."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from imagenet2017_tfds import testing
from imagenet2017_tfds.engine import prepare
from imagenet2017_tfds.errors import MissingInputError
from imagenet2017_tfds.ilsvrc import inputs, plans, tasks

# DET's 2017 test set alone: a config over one of DET's two archives.
DET_2017_TEST = dataclasses.replace(
    tasks.DET,
    name="det_2017_test",
    description="The 5,500 ILSVRC2017 DET test images new in 2017, alone.",
    parts=(tasks.DET_TEST_ARCHIVE,),
    plan=lambda ctx: {"test": plans.det_test(ctx).sort()},
    items={"test": plans.DET_ITEMS["test"]},
)
# CLS-LOC's validation split alone, under another name: a variant of a shipped config.
CLSLOC_VALIDATION = dataclasses.replace(
    tasks.CLSLOC,
    name="clsloc_validation",
    description="ILSVRC2017 CLS-LOC's 50,000 validation images alone.",
    plan=lambda ctx: {"validation": plans.clsloc_validation(ctx).sort()},
    items={"val": plans.CLSLOC_ITEMS["val"]},
)


def expected_files(release, task: tasks.Task) -> dict[str, dict[str, str | None]]:
    """split -> file name -> label (WNID), from the release's answer key."""
    if task is DET_2017_TEST:
        test = release.expected["det"]["test"]
        return {"test": {n: e.label for n, e in test.items() if n.startswith("ILSVRC2017_")}}
    return {"validation": {n: e.label for n, e in release.expected["clsloc"]["validation"].items()}}


@pytest.mark.parametrize("form", ["tarball", "tree"])
@pytest.mark.parametrize("task", [DET_2017_TEST, CLSLOC_VALIDATION], ids=lambda t: t.name)
def test_a_config_defined_outside_the_package_is_located_verified_and_planned(
    task, form, tmp_path, monkeypatch
):
    parts = ("devkit", *(a.name for a in task.parts))
    release = testing.write_release(tmp_path / "m", form=form, parts=parts)
    if release.checksums:
        monkeypatch.setenv("IMAGENET2017_CHECKSUMS", str(release.checksums))
    prepared = prepare.run(release.manual_dir, task, tmp_path / "cache")

    assert set(prepared.inputs.parts) == set(parts)
    assert not prepared.recorder.problems and not prepared.recorder.notices
    (archive,) = task.parts
    if form == "tarball":  # its digest checked; the devkit by the package's copies
        assert prepared.verified[archive.name] == "md5, sha256"
        assert prepared.passes == {archive.name: 2}
        assert prepared.verified["devkit"] == "content: the package's copies of its data files"
    lst = task.classes()
    got = {
        split: {
            item.file_name: lst.wnids[item.label] if item.label >= 0 else None
            for _, item in plan.items
        }
        for split, plan in prepared.splits.items()
    }
    assert got == expected_files(release, task)
    for split, plan in prepared.splits.items():
        assert set(plan.parts) == {archive.name}
        for entry, item in plan.items:
            data = release.members[archive.name][entry.path]
            assert task.example(item, data)["file_name"] == item.file_name
            assert item.key == task.key(split, entry.path)


def test_a_config_defined_outside_the_package_names_its_own_archives_when_missing(tmp_path):
    release = testing.write_release(tmp_path / "m", parts=("devkit", "det"))
    with pytest.raises(MissingInputError) as e:
        prepare.run(release.manual_dir, DET_2017_TEST, tmp_path / "cache")
    message = str(e.value)
    assert message.startswith(
        "imagenet2017/det_2017_test needs ILSVRC2017_DET_test_new.tar.gz (the devkit "
        "ILSVRC2017_devkit.tar.gz is optional)"
    )
    assert f"Missing: {testing.DET_TEST}." in message


def test_the_table_of_configs():
    assert list(tasks.TASKS) == ["clsloc", "det"]
    assert tasks.DEFAULT is tasks.CLSLOC
    archives = tasks.archive_files()
    assert {a.name for a in archives.values()} == set(testing.ARCHIVES)
    by_content = sorted(n for n, a in archives.items() if a.by_content(n))
    assert by_content == sorted([testing.DEVKIT, testing.KAGGLE])
    # Every split folder of a config's challenge is held by one of its archives.
    for task in tasks.TASKS.values():
        held = {d for a in task.parts for d in a.split_dirs}
        assert held == set(task.items), task.name
        assert all(a.digest == inputs.PUBLISHED for a in task.parts), task.name


# Where a string equal to a part's name is not one: the release's devkit/ folder, which
# roles.classify names a member's Role kind after, and the catalog's field of its files.
NOT_A_PART = {("roles.py", "devkit"), ("catalog.py", "devkit")}


def _compared_strings(tree: ast.AST):
    """(line, string) of each string constant compared, subscripted with or passed to
    startswith() (alone or in a tuple)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
        elif isinstance(node, ast.Subscript):
            operands = [node.slice]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "startswith":
            operands = node.args
        else:
            continue
        for o in operands:
            for v in o.elts if isinstance(o, ast.Tuple) else [o]:
                if isinstance(v, ast.Constant) and isinstance(v.value, str):
                    yield node.lineno, v.value


def test_no_module_but_the_table_names_a_config_or_an_archive():
    """No comparison, subscript or startswith() on a config's or an archive's name outside
    tasks.py (testing/ writes the independent answer key, keyed by the names on purpose)."""
    names = {*tasks.TASKS, *(a.name for a in tasks.archive_files().values())}
    package = Path(tasks.__file__).parent
    found = []
    for path in sorted(package.rglob("*.py")):
        where = path.relative_to(package)
        if path.name == "tasks.py" or "testing" in where.parts:
            continue
        for line, value in _compared_strings(ast.parse(path.read_text(), str(path))):
            if value in names and (path.name, value) not in NOT_A_PART:
                found.append(f"{where}:{line}: {value!r}")
    assert found == []
