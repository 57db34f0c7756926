"""The peer: the straightforward port of TFDS `imagenet2012` to this release. An md5 pass with
hashlib, then a GeneratorBasedBuilder that iterates the tarball with dl_manager.iter_archive
(TFDS's default handling of .tar.gz), parses XMLs with lxml and yields to TFDS's writer.
One pass collects the annotations (they may come after their images), then each split's
generator iterates the archive, as TFDS split generators do.
"""

import argparse
import hashlib
import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from lxml import etree

MAP = Path(__file__).resolve().parent.parent / "imagenet2017_tfds" / "data" / "map_clsloc.txt"
WNIDS = sorted(line.split()[0] for line in MAP.read_text().splitlines() if line.strip())
ARCHIVE = "ILSVRC2017_CLS-LOC.tar.gz"


def boxes(data: bytes):
    root = etree.fromstring(data)
    w, h = float(root.findtext("size/width")), float(root.findtext("size/height"))
    out = []
    for obj in root.iterfind("object"):
        b = obj.find("bndbox")
        x0, y0, x1, y1 = (float(b.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))
        box = np.clip([y0 / h, x0 / w, y1 / h, x1 / w], 0, 1)
        if box[2] > box[0] and box[3] > box[1]:
            out.append({"bbox": box, "label": obj.findtext("name")})
    return out


class Imagenet2017Peer(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = "The CLS-LOC archive of the benchmark corpus."

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(encoding_format="jpeg"),
                    "label": tfds.features.ClassLabel(names=WNIDS),
                    "file_name": tfds.features.Text(),
                    "objects": tfds.features.Sequence(
                        {
                            "bbox": tfds.features.BBoxFeature(),
                            "label": tfds.features.ClassLabel(names=WNIDS),
                        }
                    ),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        path = os.path.join(dl_manager.manual_dir, ARCHIVE)
        notes = {}
        for name, f in dl_manager.iter_archive(path):
            if name.endswith(".xml"):
                notes[name.split("Annotations/CLS-LOC/", 1)[1][:-4]] = boxes(f.read())
        return {
            split: self._generate_examples(path, folder, notes)
            for split, folder in (("train", "train"), ("validation", "val"), ("test", "test"))
        }

    def _generate_examples(self, path, folder, notes):
        prefix = f"Data/CLS-LOC/{folder}/"
        for name, f in tfds.download.DownloadManager.iter_archive(self._dl, path):
            if prefix not in name:
                continue
            key = name.split(prefix, 1)[1][: -len(".JPEG")]
            objects = notes.get(f"{folder}/{key}", [])
            label = (
                key.split("/")[0] if folder == "train" else (objects[0]["label"] if objects else -1)
            )
            yield key, {"image": f.read(), "label": label, "file_name": key, "objects": objects}

    def _download_and_prepare(self, dl_manager, download_config, **kwargs):
        self._dl = dl_manager
        return super()._download_and_prepare(dl_manager, download_config, **kwargs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--manual_dir", required=True)
    parser.add_argument("--data_dir", required=True)
    args = parser.parse_args()
    md5 = hashlib.md5()
    with open(os.path.join(args.manual_dir, ARCHIVE), "rb") as f:
        while chunk := f.read(8 << 20):
            md5.update(chunk)
    builder = Imagenet2017Peer(data_dir=args.data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=args.manual_dir)
    )


if __name__ == "__main__":
    main()
