"""`imagenet2017-tfds stats`: what a built dataset holds, per split, without decoding images."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass
class SplitStats:
    split: str
    examples: int = 0
    boxes: int = 0
    without_boxes: int = 0
    annotated: int = 0
    blacklisted: int = 0  # images (a config with an image label), else objects
    classes: Counter | None = None  # images per image label, else objects per box label

    def row(self) -> list[str]:
        counts = sorted(self.classes.values()) if self.classes else [0]
        per_image = self.boxes / self.examples if self.examples else 0.0
        return [
            self.split, str(self.examples), f"{per_image:.2f}", str(self.without_boxes),
            str(self.annotated), str(self.blacklisted), str(len(self.classes or ())),
            f"{counts[0]}/{counts[len(counts) // 2]}/{counts[-1]}",
        ]  # fmt: skip


HEADER = ["split", "examples", "boxes/image", "no boxes", "annotated", "blacklisted", "classes", "min/median/max per class"]  # fmt: skip


def collect(data_dir: str, config: str) -> list[SplitStats]:
    from tqdm import auto as tqdm

    from imagenet2017_tfds import reading

    builder = reading.builder(data_dir, config)
    out = []
    for split in builder.info.splits:
        s = SplitStats(split, classes=Counter())
        total = builder.info.splits[split].num_examples
        rows = reading.examples(builder, split, image=False)  # TFRecord or ArrayRecord
        for ex in tqdm.tqdm(rows, desc=f"{config} {split}", total=total, leave=False):
            n = len(ex["objects"]["label"])
            s.examples += 1
            s.boxes += n
            s.without_boxes += n == 0
            s.annotated += bool(ex["annotated"])
            # What a config holds, told by its features: an image label (CLS-LOC), or
            # only box labels (DET); a blacklist of images, or of objects.
            if "label" in ex:
                if ex["label"] >= 0:
                    s.classes[int(ex["label"])] += 1
            else:
                s.classes.update(int(x) for x in ex["objects"]["label"])
            if "blacklisted" in ex:
                s.blacklisted += bool(ex["blacklisted"])
            else:
                s.blacklisted += int(ex["objects"]["blacklisted"].sum())
        out.append(s)
    return out


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
