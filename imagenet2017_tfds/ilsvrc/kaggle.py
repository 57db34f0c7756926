"""Kaggle's release of the same CLS-LOC challenge (ILSVRC moved to Kaggle in July 2017).

Its zip holds LOC_synset_mapping.txt, LOC_train_solution.csv, LOC_val_solution.csv,
LOC_sample_submission.csv and imagenet_object_localization_patched2019.tar.gz, which holds
the same ILSVRC/{Annotations,Data,ImageSets}/CLS-LOC tree (its test images carry the 2019
patch). No digest of these files is published, so the release is verified by content: the
validation labels must equal the devkit's ground truth, and labels and boxes must agree with
LOC_val_solution.csv where it lies beside the archive.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from imagenet2017_tfds.errors import ConsistencyError
from imagenet2017_tfds.ilsvrc.xml_annotations import Annotation

TARBALL = "imagenet_object_localization_patched2019.tar.gz"
VAL_SOLUTION = "LOC_val_solution.csv"
# Kaggle does not publish how its CSV boxes were derived from the XMLs (0- or 1-based
# pixels): a box agrees when each coordinate is within this many pixels.
PIXEL_TOLERANCE = 1.0

Row = tuple[str, float, float, float, float]  # wnid, xmin, ymin, xmax, ymax


@dataclass
class Solution:
    """LOC_val_solution.csv: `ImageId,PredictionString`, the string `WNID xmin ymin xmax ymax`
    repeated once per box."""

    source: str
    boxes: dict[str, list[Row]]

    @classmethod
    def parse(cls, text: str, source: str) -> Solution:
        boxes: dict[str, list[Row]] = {}
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["ImageId", "PredictionString"]:
            raise ConsistencyError(
                f"{source} line 1: expected the header 'ImageId,PredictionString', found "
                f"{','.join(header or [])!r}. Use the file from Kaggle's "
                "imagenet-object-localization-challenge, or remove it (it is optional)."
            )
        for number, row in enumerate(reader, 2):
            if not row:
                continue
            fields = row[1].split() if len(row) > 1 else []
            try:
                if len(row) != 2 or not fields or len(fields) % 5:
                    raise ValueError
                rows = [
                    (fields[i], *(float(v) for v in fields[i + 1 : i + 5]))
                    for i in range(0, len(fields), 5)
                ]
            except ValueError:
                raise ConsistencyError(
                    f"{source} line {number}: expected `ImageId,WNID xmin ymin xmax ymax ...`, "
                    f"found {','.join(row)!r}. Download it again, or remove it (it is optional)."
                ) from None
            boxes[row[0].strip()] = rows
        return cls(source, boxes)

    def check(self, image: str, annotation: Annotation, wnid: str, where: str) -> None:
        """The image's row must name only `wnid` and the annotation's boxes."""
        rows = self.boxes.get(image)
        if rows is None:
            raise ConsistencyError(
                f"{where}: {self.source} has no row for {image}. The archive and the CSV are "
                "not of one release: download them again."
            )
        named = sorted({r[0] for r in rows})
        ours = sorted((b.xmin, b.ymin, b.xmax, b.ymax) for b in annotation.objects)
        theirs = sorted(r[1:] for r in rows)
        agree = len(ours) == len(theirs) and all(
            abs(a - b) <= PIXEL_TOLERANCE
            for o, t in zip(ours, theirs, strict=True)
            for a, b in zip(o, t, strict=True)
        )
        if named != [wnid] or not agree:
            raise ConsistencyError(
                f"{where}: {self.source} says {named} with boxes {theirs}; the devkit's ground "
                f"truth says {wnid} and the annotation has boxes {ours}. The archive is not "
                "the release Kaggle published: download it again."
            )

    def unplanned(self, planned: set[str]) -> list[str]:
        """Images the CSV names that the archive's validation split does not hold."""
        return sorted(set(self.boxes) - planned)
