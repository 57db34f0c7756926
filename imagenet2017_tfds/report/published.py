"""Which members of a build explain a difference from the split sizes the release publishes
(each config's `Task.published`): metadata.json's skipped and unlisted members."""

from __future__ import annotations

from imagenet2017_tfds.ilsvrc import roles

_SPLITS = {"train": "train", "val": "validation", "test": "test"}


def split_of(member: str) -> tuple[str | None, str]:
    """The split a release member (path below ILSVRC/) belongs to, and what it is."""
    role = roles.classify(member)
    if role is None or role.kind not in ("image", "annotation"):
        return None, role.kind if role else "other"
    return _SPLITS[role.split_dir], role.kind


def causes(metadata: dict) -> dict[str, dict]:
    """Per split: the images skipped (one example fewer each), the annotations skipped (the
    image kept without boxes) and the unlisted images kept (one example more each)."""
    out: dict[str, dict] = {}

    def entry(split):
        return out.setdefault(
            split, {"skipped_images": [], "skipped_annotations": [], "unlisted_images": []}
        )

    for member, reason in metadata.get("skipped_members", []):
        split, kind = split_of(member)
        key = "skipped_images" if kind == "image" else "skipped_annotations"
        entry(split or "other")[key].append([member, reason])
    for member in metadata.get("unlisted_members", []):
        split, _ = split_of(member)
        entry(split or "other")["unlisted_images"].append(member)
    return out
