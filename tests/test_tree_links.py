"""An extracted tree stays in its folder: links within the manual folder are followed, a link
that leads out of it is refused when the tree is walked and when a file is read. Real files
and real links, in the miniature release's tree."""

from __future__ import annotations

import os
import shutil

import pytest

from imagenet2017_tfds import testing
from imagenet2017_tfds.errors import Imagenet2017Error, InputError
from imagenet2017_tfds.ilsvrc import inputs, tasks
from imagenet2017_tfds.sources import Entry

IMAGE = "Data/CLS-LOC/train/n01440764/n01440764_10040.JPEG"
CLASS = "Data/CLS-LOC/train/n01443537"
VAL = "Data/CLS-LOC/val"


@pytest.fixture
def release(tmp_path):
    """The CLS-LOC tree in tmp_path/manual/ILSVRC, and a folder outside it."""
    (tmp_path / "elsewhere").mkdir()
    return testing.write_release(tmp_path / "manual", form="tree", parts=("clsloc",))


def expected(release) -> dict[str, bytes]:
    subdirs = tasks.CLSLOC_ARCHIVE.tree_folders
    return {p: d for p, d in release.members["clsloc"].items() if p.startswith(subdirs)}


def tree(manual):
    return inputs.locate(manual, tasks.CLSLOC.parts).parts["clsloc"]


def scanned(source) -> dict[str, bytes]:
    """Every file a walk of `source` meets, read."""
    with source.walk() as walk:
        return {member.path: walk.read(member) for member in walk}


def located(source) -> list[Entry]:
    """Every file a walk of `source` meets, none read: where a build would read it."""
    with source.walk() as walk:
        return [Entry(member.offset, member.path, member.size) for member in walk]


def move_and_link(path, to, relative=False):
    """Moves `path` to `to` and leaves a link to it in its place."""
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, to)
    os.symlink(os.path.relpath(to, path.parent) if relative else to, path)


# ------------------------------------------------------------------ links that lead out


@pytest.mark.parametrize("what", [IMAGE, CLASS, VAL, "."])
def test_a_link_out_of_the_manual_folder_is_refused_when_the_tree_is_walked(
    release, tmp_path, what
):
    """A file, a class folder, a split folder, the ILSVRC folder itself."""
    base = release.manual_dir / "ILSVRC"
    link, target = base / what, tmp_path / "elsewhere" / os.path.basename(base / what)
    move_and_link(os.path.normpath(link), target)
    with pytest.raises(InputError) as e:
        scanned(tree(release.manual_dir))
    message = str(e.value)
    assert isinstance(e.value, Imagenet2017Error)
    assert message.startswith(f"{os.path.normpath(link)}: a link to {target}, outside")
    assert str(release.manual_dir) in message
    assert "replace the link by the file or folder it points to" in message
    assert "move the target inside the folder" in message


@pytest.mark.parametrize("proc", [True, False], ids=["proc", "no_proc"])
@pytest.mark.parametrize("swap", ["file", "folder"])
def test_a_link_swapped_out_of_the_folder_after_the_scan_is_refused_when_read(
    release, tmp_path, swap, proc, monkeypatch
):
    if not proc:  # as on macOS: the path is resolved instead of the file opened being named
        readlink = os.readlink

        def no_proc(path):
            if str(path).startswith("/proc/"):
                raise FileNotFoundError(path)
            return readlink(path)

        monkeypatch.setattr(os, "readlink", no_proc)
    source = tree(release.manual_dir)
    entries = located(source)
    base = release.manual_dir / "ILSVRC"
    # Someone replaces an image (or its class folder) with a link to a look-alike elsewhere.
    moved = base / (IMAGE if swap == "file" else os.path.dirname(IMAGE))
    elsewhere = tmp_path / "elsewhere" / moved.name
    shutil.copytree(moved, elsewhere) if swap == "folder" else shutil.copy(moved, elsewhere)
    (shutil.rmtree if swap == "folder" else os.unlink)(moved)
    os.symlink(elsewhere, moved)
    with pytest.raises(InputError, match=f"^{moved}: a link to {elsewhere}, outside"):
        list(source.read(entries))
    others = [e for e in entries if not e.path.startswith(str(moved.relative_to(base)))]
    assert dict((e.path, d) for e, d in source.read(others)) == {
        e.path: expected(release)[e.path] for e in others
    }


def test_a_broken_link_and_a_link_loop_are_refused_with_what_to_do(release):
    base = release.manual_dir / "ILSVRC"
    broken = base / "Data/CLS-LOC/train/n01440764/n01440764_1.JPEG"
    os.symlink("n01440764_missing.JPEG", broken)
    with pytest.raises(InputError, match=f"^{broken}: a link to .*which does not exist"):
        scanned(tree(release.manual_dir))
    broken.unlink()
    loop = base / "Data/CLS-LOC/train/n01440764/again"
    os.symlink("..", loop)
    with pytest.raises(InputError, match=f"^{loop}: a link to .*never end.*Remove the link"):
        scanned(tree(release.manual_dir))


# ------------------------------------------------------------------ links that stay inside


def test_links_whose_target_lies_inside_the_folder_are_followed(release):
    manual = release.manual_dir
    base = manual / "ILSVRC"
    # A file and a class folder kept beside the tree (inside the manual folder), one linked
    # by an absolute path, one by a relative one; a split folder linked within the tree.
    move_and_link(base / IMAGE, manual / "store" / "one.JPEG")
    move_and_link(base / CLASS, manual / "store" / "n01443537", relative=True)
    move_and_link(base / VAL, base / "Data/CLS-LOC/val-kept", relative=True)
    found = scanned(tree(manual))
    kept = {
        p.replace("/val/", "/val-kept/"): d
        for p, d in expected(release).items()
        if p.startswith(VAL + "/")
    }
    assert found == {**expected(release), **kept}
    source = tree(manual)
    entries = located(source)
    assert {e.path: d for e, d in source.read(entries)} == found


def test_a_manual_folder_that_is_itself_a_link_is_read(release, tmp_path):
    manual = release.manual_dir
    move_and_link(manual / "ILSVRC" / IMAGE, manual / "store" / "one.JPEG")  # inside: followed
    os.symlink(manual, tmp_path / "manual-link")
    source = tree(tmp_path / "manual-link")
    assert scanned(source) == expected(release)
    entries = located(source)
    assert {e.path: d for e, d in source.read(entries)} == expected(release)
