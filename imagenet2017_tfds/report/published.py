"""What the release publishes: each config's split sizes, with where each number comes from,
and which members of a build explain a difference (metadata.json's skipped and unlisted)."""

from __future__ import annotations

from imagenet2017_tfds import layout

# config -> split -> (images, source)
COUNTS = {
    "clsloc": {
        "train": (1_281_167, "devkit readme (ILSVRC2015), table of images per split"),
        "validation": (50_000, "devkit readme; 50 per class in its validation ground truth"),
        "test": (100_000, "devkit readme"),
    },
    "det": {
        "train": (456_567, "devkit readme (ILSVRC2015), table of images per split"),
        "validation": (20_121, "devkit readme"),
        "test": (
            65_500,
            "the DET archive's test images and the 5,500 of "
            "ILSVRC2017_DET_test_new (image-net.org, 2017); Liu et al., IJCV 2020",
        ),
    },
}

_SPLITS = {"train": "train", "val": "validation", "test": "test"}


def split_of(member: str) -> tuple[str | None, str]:
    """The split a release member (path below ILSVRC/) belongs to, and what it is."""
    role = layout.classify(member)
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
