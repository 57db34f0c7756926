"""A miniature ILSVRC2017 release in the exact real layout, quirks included, with the answer
key: what a correct build must contain.

The answer key is worked out here independently of the builder: boxes, labels and blacklists
come from the release's own rules and data files, never from the package's code, so comparing
a build with `Release.expected` checks the builder rather than itself.
"""

from __future__ import annotations

import importlib.resources
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from imagenet2017_tfds.testing.tarballs import tarball_bytes, write_checksums

# The devkit's data files (verbatim copies) and real annotations of the release, shipped in the
# package's data folder.
DATA = importlib.resources.files("imagenet2017_tfds") / "data"

DEVKIT = "ILSVRC2017_devkit.tar.gz"
CLSLOC = "ILSVRC2017_CLS-LOC.tar.gz"
DET = "ILSVRC2017_DET.tar.gz"
DET_TEST = "ILSVRC2017_DET_test_new.tar.gz"
ARCHIVES = {"devkit": DEVKIT, "clsloc": CLSLOC, "det": DET, "det_test": DET_TEST}
# Kaggle's release of CLS-LOC: the same tree in another tarball, CSV files beside it.
KAGGLE = "imagenet_object_localization_patched2019.tar.gz"
KAGGLE_VAL_SOLUTION = "LOC_val_solution.csv"
DEVKIT_DATA = (
    "map_clsloc.txt",
    "map_det.txt",
    "ILSVRC2015_clsloc_validation_ground_truth.txt",
    "ILSVRC2015_clsloc_validation_blacklist.txt",
    "ILSVRC2015_det_validation_blacklist.txt",
)


@dataclass
class ExpectedObject:
    wnid: str
    bbox: tuple[float, float, float, float]  # (ymin, xmin, ymax, xmax)
    subcategory: str | None = None
    blacklisted: bool = False


@dataclass
class Expected:
    file_name: str
    label: str | None
    annotated: bool
    blacklisted: bool
    objects: list[ExpectedObject]
    data: bytes
    kind: str  # jpeg_rgb, jpeg_gray, jpeg_cmyk, png
    size: tuple[int, int]  # (width, height) of the pixels


@dataclass
class Release:
    """A miniature release written to `manual_dir`, and what a correct build of it holds."""

    manual_dir: Path
    checksums: Path | None  # the checksums file to build with (tarballs only)
    form: str  # "tarball" or "tree"
    # config -> split -> image file name -> what its example holds
    expected: dict[str, dict[str, dict[str, Expected]]] = field(default_factory=dict)
    # archive part -> {path below ILSVRC/: bytes}, as written (tests mutate copies of these)
    members: dict[str, dict[str, bytes]] = field(default_factory=dict)


# ------------------------------------------------------------------ facts read from the data


def _map(name: str) -> dict[int, str]:
    table = {}
    for line in (DATA / name).read_text().splitlines():
        if line.strip():
            wnid, number, _ = line.split(maxsplit=2)
            table[int(number)] = wnid
    return table


def _ground_truth() -> list[str]:
    by_id = _map("map_clsloc.txt")
    return [by_id[int(x)] for x in (DATA / DEVKIT_DATA[2]).read_text().split()]


def _det_blacklist() -> set[tuple[int, str]]:
    pairs = set()
    for line in (DATA / DEVKIT_DATA[4]).read_text().splitlines():
        if line.strip():
            index, wnid = line.split()
            pairs.add((int(index), wnid))
    return pairs


# ------------------------------------------------------------------ images and annotations


def _image(rng: np.random.Generator, kind: str, size: tuple[int, int]) -> bytes:
    width, height = size
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    im = Image.fromarray(pixels, "RGB")
    out = io.BytesIO()
    if kind == "png":
        im.save(out, "PNG")
    else:
        mode = {"jpeg_rgb": "RGB", "jpeg_gray": "L", "jpeg_cmyk": "CMYK"}[kind]
        im.convert(mode).save(out, "JPEG", quality=90)
    return out.getvalue()


def expected_box(xmin, ymin, xmax, ymax, width, height):
    """The rules, worked out independently: divide by <size>, swap, clip, drop empty."""
    x0, x1 = sorted((float(xmin) / width, float(xmax) / width))
    y0, y1 = sorted((float(ymin) / height, float(ymax) / height))
    x0, x1, y0, y1 = (min(max(v, 0.0), 1.0) for v in (x0, x1, y0, y1))
    if x1 <= x0 or y1 <= y0:
        return None
    return (y0, x0, y1, x1)


def clsloc_xml(folder, filename, size, objects) -> bytes:
    """Real CLS-LOC format; objects are (name, xmin, ymin, xmax, ymax) with values as text."""
    width, height = size
    parts = [
        "<annotation>",
        f"\t<folder>{folder}</folder>",
        f"\t<filename>{filename}</filename>",
        "\t<source>\n\t\t<database>ILSVRC_2012</database>\n\t</source>",
        f"\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n\t\t<depth>3</depth>\n\t</size>",
        "\t<segmented>0</segmented>",
    ]
    for name, xmin, ymin, xmax, ymax in objects:
        parts.append(
            f"\t<object>\n\t\t<name>{name}</name>\n\t\t<pose>Unspecified</pose>\n"
            "\t\t<truncated>0</truncated>\n\t\t<difficult>0</difficult>\n"
            f"\t\t<bndbox>\n\t\t\t<xmin>{xmin}</xmin>\n\t\t\t<ymin>{ymin}</ymin>\n"
            f"\t\t\t<xmax>{xmax}</xmax>\n\t\t\t<ymax>{ymax}</ymax>\n\t\t</bndbox>\n\t</object>"
        )
    parts.append("</annotation>\n")
    return "\n".join(parts).encode()


def det_xml(folder, filename, size, objects) -> bytes:
    """Real DET format: no depth, bndbox order xmin, xmax, ymin, ymax, optional subcategory."""
    width, height = size
    parts = [
        "<annotation>",
        f"\t<folder>{folder}</folder>",
        f"\t<filename>{filename}</filename>",
        "\t<source>\n\t\t<database>ILSVRC_2013</database>\n\t</source>",
        f"\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n\t</size>",
    ]
    for name, sub, xmin, ymin, xmax, ymax in objects:
        subcat = f"\t\t<subcategory>{sub}</subcategory>\n" if sub else ""
        parts.append(
            f"\t<object>\n\t\t<name>{name}</name>\n{subcat}"
            f"\t\t<bndbox>\n\t\t\t<xmin>{xmin}</xmin>\n\t\t\t<xmax>{xmax}</xmax>\n"
            f"\t\t\t<ymin>{ymin}</ymin>\n\t\t\t<ymax>{ymax}</ymax>\n\t\t</bndbox>\n\t</object>"
        )
    parts.append("</annotation>\n")
    return "\n".join(parts).encode()


def read_sample(name: str):
    """A real XML sample: its bytes, <size>, and objects (name, subcategory, coordinates)."""
    from lxml import etree

    data = (DATA / name).read_bytes()
    root = etree.fromstring(data)
    size = (float(root.findtext("size/width")), float(root.findtext("size/height")))
    objects = []
    for obj in root.iterfind("object"):
        box = obj.find("bndbox")
        coords = [float(box.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")]
        objects.append((obj.findtext("name"), obj.findtext("subcategory"), *coords))
    return data, size, objects


# ------------------------------------------------------------------ the release


class _Contents:
    """The members of every archive and the answer key, as they are drawn."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.members: dict[str, dict[str, bytes]] = {p: {} for p in ARCHIVES}
        self.val_solution: dict[str, list] = {}  # CLS-LOC val image -> [(wnid, *box)]
        self.expected: dict[str, dict[str, dict[str, Expected]]] = {
            "clsloc": {"train": {}, "validation": {}, "test": {}},
            "det": {"train": {}, "validation": {}, "test": {}},
        }

    def size(self) -> tuple[int, int]:
        return int(self.rng.integers(24, 65)), int(self.rng.integers(24, 65))

    def image(self, part, path, kind="jpeg_rgb"):
        size = self.size()
        data = _image(self.rng, kind, size)
        self.members[part][path] = data
        return data, size


def _test_image(file_name: str, data: bytes, size: tuple[int, int]) -> Expected:
    """What a test image's example holds: its bytes alone, no label, no object."""
    return Expected(
        file_name=file_name,
        label=None,
        annotated=False,
        blacklisted=False,
        objects=[],
        data=data,
        kind="jpeg_rgb",
        size=size,
    )


def _clsloc(b: _Contents) -> None:
    exp = b.expected["clsloc"]
    truth = _ground_truth()
    blacklist = {int(x) for x in (DATA / DEVKIT_DATA[3]).read_text().split()}
    train_cls, train_loc = [], []

    def train(wnid, n, kind="jpeg_rgb", xml=None):
        """xml: None (no annotation), "sample" (the real one), or (size, objects)."""
        image_id = f"{wnid}/{wnid}_{n}"
        data, size = b.image("clsloc", f"Data/CLS-LOC/train/{image_id}.JPEG", kind)
        objects, annotated = [], xml is not None
        if xml == "sample":
            text, xml_size, raw = read_sample(f"clsloc_train__{wnid}_{n}.xml")
            objs = [(name, *c) for name, _, *c in raw]
        elif xml is not None:
            xml_size, objs = xml
            text = clsloc_xml(wnid, "%s" if n == 1309 else f"{wnid}_{n}", xml_size, objs)
        if annotated:
            b.members["clsloc"][f"Annotations/CLS-LOC/train/{image_id}.xml"] = text
            train_loc.append(image_id)
            for name, *coords in objs:
                box = expected_box(*coords, *xml_size)
                readable = {"Scottish_deerhound": "n02092002"}.get(name, name)
                if box:
                    objects.append(ExpectedObject(readable, box))
        train_cls.append(image_id)
        file_name = f"{wnid}_{n}.JPEG"
        exp["train"][file_name] = Expected(
            file_name=file_name,
            label=wnid,
            annotated=annotated,
            blacklisted=False,
            objects=objects,
            data=data,
            kind=kind,
            size=size,
        )

    for n in (10040, 10427, 12308):
        train("n01440764", n, xml="sample")
    train("n01440764", 9999)
    train("n01443537", 17309, xml="sample")
    train("n01443537", 17565, xml="sample")
    train("n01443537", 100, kind="jpeg_gray")
    train("n02105855", 2933, kind="png")  # a PNG named .JPEG, as the release has one
    train("n02105855", 2934, xml=((60, 40), [("n02105855", 5, 5, 30, 30)]))
    # CMYK, <filename>%s</filename>, and a box past the image
    train("n01739381", 1309, kind="jpeg_cmyk", xml=((50, 50), [("n01739381", -5, 10, 80, 45)]))
    # a readable label instead of a WNID
    train("n02092002", 100, xml=((40, 30), [("Scottish_deerhound", 2, 3, 20, 25)]))
    train("n02092002", 101)
    # float coordinates, an inverted box, a box entirely outside (dropped)
    train(
        "n04596742",
        4225,
        kind="jpeg_gray",
        xml=(
            (100, 80),
            [
                ("n04596742", 12.5, 7.25, 60, 70.5),
                ("n04596742", 90, 70, 10, 5),
                ("n04596742", 120, 10, 150, 40),
            ],
        ),
    )
    # an XML whose only box has nothing left after clipping: annotated, zero objects
    train("n04596742", 2, xml=((30, 30), [("n04596742", 40, 40, 60, 60)]))

    for number in (1, 22, 36, 50, 19877, 2138, 14771, 16259, 19435, 26271):
        name = f"ILSVRC2012_val_{number:08d}"
        wnid = truth[number - 1]
        kind = "jpeg_cmyk" if number == 19877 else "jpeg_rgb"
        data, size = b.image("clsloc", f"Data/CLS-LOC/val/{name}.JPEG", kind)
        sample = f"clsloc_val__{name}.xml"
        if (DATA / sample).is_file():
            text, xml_size, raw = read_sample(sample)
            objs = [(n, *c) for n, _, *c in raw]
        else:
            xml_size = b.size()
            objs = [
                (wnid, 1 + i, 2, xml_size[0] - 3 - i, xml_size[1] - 1)
                for i in range(1 + number % 3)
            ]
            text = clsloc_xml("val", name, xml_size, objs)
        b.members["clsloc"][f"Annotations/CLS-LOC/val/{name}.xml"] = text
        objects = [ExpectedObject(n, box) for n, *c in objs if (box := expected_box(*c, *xml_size))]
        b.val_solution[name] = [(wnid, *c) for _, *c in objs]  # Kaggle names the image's class
        exp["validation"][f"{name}.JPEG"] = Expected(
            file_name=f"{name}.JPEG",
            label=wnid,
            annotated=True,
            blacklisted=number in blacklist,
            objects=objects,
            data=data,
            kind=kind,
            size=size,
        )

    for number in range(1, 6):
        name = f"ILSVRC2012_test_{number:08d}"
        data, size = b.image("clsloc", f"Data/CLS-LOC/test/{name}.JPEG")
        exp["test"][f"{name}.JPEG"] = _test_image(f"{name}.JPEG", data, size)

    lists = b.members["clsloc"]
    lists["ImageSets/CLS-LOC/train_cls.txt"] = _lines(sorted(train_cls))
    lists["ImageSets/CLS-LOC/train_loc.txt"] = _lines(sorted(train_loc))
    val = sorted(n[: -len(".JPEG")] for n in exp["validation"])
    lists["ImageSets/CLS-LOC/val.txt"] = "".join(f"{v} {int(v[-8:])}\n" for v in val).encode()
    test = sorted(n[: -len(".JPEG")] for n in exp["test"])
    lists["ImageSets/CLS-LOC/test.txt"] = _lines(test)


def _lines(ids: list[str]) -> bytes:
    return "".join(f"{image_id} {i}\n" for i, image_id in enumerate(ids, 1)).encode()


def _det(b: _Contents, train_txt: bool = True, test_list: str = "own") -> None:
    exp = b.expected["det"]
    det_ids = {w: n for n, w in _map("map_det.txt").items()}
    blacklist = _det_blacklist()
    train_ids: list[str] = []
    per_class: dict[str, dict[str, int]] = {}

    def train(image_id, objs=None):
        """objs None: no XML; else [(name, subcategory, xmin, ymin, xmax, ymax)]."""
        data, size = b.image("det", f"Data/DET/train/{image_id}.JPEG")
        objects = []
        if objs is not None:
            xml_size = size
            folder, _, stem = image_id.rpartition("/")
            b.members["det"][f"Annotations/DET/train/{image_id}.xml"] = det_xml(
                folder, stem, xml_size, objs
            )
            for name, sub, *coords in objs:
                per_class.setdefault(name, {})[image_id] = 1
                if box := expected_box(*coords, *xml_size):
                    objects.append(ExpectedObject(name, box, sub))
        train_ids.append(image_id)
        exp["train"][f"{image_id}.JPEG"] = Expected(
            file_name=f"{image_id}.JPEG",
            label=None,
            annotated=objs is not None,
            blacklisted=False,
            objects=objects,
            data=data,
            kind="jpeg_rgb",
            size=size,
        )

    train("ILSVRC2013_train/n02691156/n02691156_1", [("n02691156", None, 2, 3, 20, 18)])
    train(
        "ILSVRC2013_train/n02691156/n02691156_7",
        [("n02691156", None, 1, 1, 10, 10), ("n02219486", "n02221083", 5, 5, 22, 23)],
    )
    train(
        "ILSVRC2013_train/n01440764/n01440764_3", []
    )  # a folder outside the 200; XML with no object
    train("ILSVRC2013_train/n01440764/n01440764_4", [("n02672831", None, 3, 4, 40, 41)])
    for folder, n in (
        ("ILSVRC2013_train_extra0", 5),
        ("ILSVRC2013_train_extra0", 9),
        ("ILSVRC2013_train_extra1", 12),
    ):
        train(f"{folder}/ILSVRC2013_train_{n:08d}")  # negatives: no XML at all
        per_class.setdefault("n02691156", {})[f"{folder}/ILSVRC2013_train_{n:08d}"] = -1
    train(
        "ILSVRC2014_train_0000/ILSVRC2014_train_00000001",
        [("n02672831", "n02672831", 0, 0, 12.5, 13)],
    )
    train("ILSVRC2014_train_0000/ILSVRC2014_train_00000002", [])
    per_class["n02219486"]["ILSVRC2014_train_0000/ILSVRC2014_train_00000002"] = 0

    lists = b.members["det"]
    if train_txt:
        lists["ImageSets/DET/train.txt"] = _lines(sorted(train_ids))
    for wnid, images in per_class.items():
        lists[f"ImageSets/DET/train_{det_ids[wnid]}.txt"] = "".join(
            f"{i} {v}\n" for i, v in sorted(images.items())
        ).encode()

    # Validation: the real DET samples, with their real index in the full val list chosen so
    # that blacklist pairs (46 n00007846, 211 n00007846) apply.
    indices = {
        "ILSVRC2012_val_00000006": 3,
        "ILSVRC2012_val_00000018": 9,
        "ILSVRC2012_val_00000022": 46,
        "ILSVRC2012_val_00000166": 90,
        "ILSVRC2012_val_00000204": 120,
        "ILSVRC2012_val_00000347": 211,
        "ILSVRC2012_val_00003082": 1500,
        "ILSVRC2013_val_00000001": 15523,
        "ILSVRC2013_val_00000006": 15528,
        "ILSVRC2013_val_00000015": 15537,
    }
    for name, index in indices.items():
        data, size = b.image("det", f"Data/DET/val/{name}.JPEG")
        text, xml_size, raw = read_sample(f"det_val__{name}.xml")
        b.members["det"][f"Annotations/DET/val/{name}.xml"] = text
        objects = [
            ExpectedObject(n, box, sub, blacklisted=(index, n) in blacklist)
            for n, sub, *c in raw
            if (box := expected_box(*c, *xml_size))
        ]
        exp["validation"][f"{name}.JPEG"] = Expected(
            file_name=f"{name}.JPEG",
            label=None,
            annotated=True,
            blacklisted=False,
            objects=objects,
            data=data,
            kind="jpeg_rgb",
            size=size,
        )
    lists["ImageSets/DET/val.txt"] = "".join(
        f"{n} {i}\n" for n, i in sorted(indices.items())
    ).encode()

    every = []
    for part, split, prefix, count in (
        ("det", "test", "ILSVRC2016_test_", 3),
        ("det_test", "test", "ILSVRC2017_test_", 4),
    ):
        names = [f"{prefix}{n:08d}" for n in range(1, count + 1)]
        every += names
        for name in names:
            data, size = b.image(part, f"Data/DET/test/{name}.JPEG")
            exp[split][f"{name}.JPEG"] = _test_image(f"{name}.JPEG", data, size)
        b.members[part]["ImageSets/DET/test.txt"] = _lines(
            every if test_list == "all" and part == "det_test" else names
        )


def _devkit(b: _Contents) -> None:
    kit = b.members["devkit"]
    kit["devkit/COPYING"] = b"ImageNet devkit (miniature copy for tests)\n"
    kit["devkit/readme.txt"] = (DATA / "devkit_readme_ILSVRC2015.txt").read_bytes()
    for name in DEVKIT_DATA:
        kit[f"devkit/data/{name}"] = (DATA / name).read_bytes()
    kit["devkit/data/meta_clsloc.mat"] = b"MATLAB 5.0 MAT-file placeholder"
    kit["devkit/data/meta_det.mat"] = b"MATLAB 5.0 MAT-file placeholder"
    kit["devkit/evaluation/eval_clsloc.m"] = b"% placeholder\n"


def _number(v: float) -> str:
    return f"{v:g}"


def write_kaggle_files(folder: Path, val_solution: dict[str, list]) -> None:
    """The CSV files of Kaggle's zip, beside its tarball (or the tree extracted from it)."""
    rows = "".join(
        f"{image},{' '.join(' '.join([w, *map(_number, c)]) for w, *c in boxes)}\n"
        for image, boxes in sorted(val_solution.items())
    )
    (folder / KAGGLE_VAL_SOLUTION).write_text("ImageId,PredictionString\n" + rows)
    (folder / "LOC_synset_mapping.txt").write_bytes((DATA / "LOC_synset_mapping.txt").read_bytes())
    (folder / "LOC_train_solution.csv").write_text("ImageId,PredictionString\n")
    (folder / "LOC_sample_submission.csv").write_text("ImageId,PredictionString\n")


def write_release(
    root: Path,
    *,
    form: str = "tarball",
    parts: tuple[str, ...] = ("devkit", "clsloc", "det", "det_test"),
    ilsvrc_prefix: bool = True,
    seed: int = 0,
    kaggle: bool = False,
    det_train_txt: bool = True,
    det_test_list: str = "own",
    order: str = "scrambled",
) -> Release:
    """Writes a miniature ILSVRC2017 release into `root` (a few hundred KB, in well under a
    second): 14 CLS-LOC train, 10 validation and 5 test images; 9 DET train, 10 validation
    and 7 test images, with real annotations and the release's quirks.

    `form`: "tarball" (the archives as downloaded, and `checksums.tsv` for them) or "tree"
    (what `tar xzf` leaves, under `ILSVRC/` unless `ilsvrc_prefix` is False);
    `parts`: which archives (ARCHIVES' keys); `seed`: the same seed writes the same bytes;
    `kaggle`: CLS-LOC as Kaggle ships it (its tarball, or its tree, with the CSV files);
    `det_train_txt`: whether the DET archive has a train.txt beside the per-class lists;
    `det_test_list`: DET_test_new's test.txt names its "own" images or "all" 65,500;
    `order`: the tarballs' member order (tarballs.member_order).

    Build it with `tfds build imagenet2017 --manual_dir <root>`, the environment variable
    IMAGENET2017_CHECKSUMS set to `Release.checksums` (the real release's digests do not
    match it)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    b = _Contents(seed)
    _clsloc(b)
    _det(b, det_train_txt, det_test_list)
    _devkit(b)
    release = Release(
        manual_dir=root,
        checksums=None,
        form=form,
        expected=b.expected,
        members={p: b.members[p] for p in parts},
    )
    names = {**ARCHIVES, "clsloc": KAGGLE} if kaggle else ARCHIVES
    if kaggle:
        write_kaggle_files(root, b.val_solution)
    if form == "tarball":
        for offset, part in enumerate(parts):
            (root / names[part]).write_bytes(tarball_bytes(b.members[part], seed + offset, order))
        # No digest of Kaggle's files is published: the checksums file does not list it.
        release.checksums = write_checksums(root, [names[p] for p in parts if names[p] != KAGGLE])
    elif form == "tree":
        base = root / "ILSVRC" if ilsvrc_prefix else root
        # DET before DET_test_new: its test.txt overwrites the DET archive's, as tar xzf does.
        for part in sorted(parts, key=list(ARCHIVES).index):
            for name, data in b.members[part].items():
                target = base / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
    else:
        raise ValueError(f"form must be 'tarball' or 'tree', not {form!r}")
    return release
