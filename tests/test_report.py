"""`imagenet2017-tfds report`: its numbers against the miniature release's answer key, its
page in a real browser (Debian's headless Chromium, tests/support/browser.py), its numbers the same
however the examples are split between workers, and the report of a dataset in gs://."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import imagenet2017_tfds
from imagenet2017_tfds import testing
from tests.conftest import CLI, ROOT, build_env, cli
from tests.support import readback
from tests.support.browser import Browser, file_url

CONFIGS = ("clsloc", "det")
PUBLISHED = {  # the devkit readme's table and the 2017 DET test set, read by hand
    "clsloc": {"train": 1_281_167, "validation": 50_000, "test": 100_000},
    "det": {"train": 456_567, "validation": 20_121, "test": 65_500},
}
WIDTH = 1366  # a laptop's screen, in CSS pixels
NARROW = 1024  # a small laptop's
TABLES_WIDER_THAN_THE_PAGE = (
    "[...document.querySelectorAll('.wide')].filter(e => e.scrollWidth > e.clientWidth)"
    ".map(e => e.closest('section').id)"
)
YELLOW = np.array([255, 212, 0])  # the boxes' colour on the page


@pytest.fixture(scope="module")
def reports(cli_builds, tmp_path_factory):
    """Both configs' reports of the tarball build: {config: (page, its numbers)}."""
    out = tmp_path_factory.mktemp("reports")
    found = {}
    for config in CONFIGS:
        page = out / f"{config}.html"
        said = cli("report", cli_builds, "--config", config, "-o", page)
        assert f"Wrote {page} and {out / config}.json" in said
        found[config] = (page, json.loads((out / f"{config}.json").read_text()))
    return found


def _wnids(config: str) -> list[str]:
    """The config's class list in label order: the devkit map's WNIDs, sorted."""
    text = (testing.DATA / f"map_{config}.txt").read_text()
    return sorted(line.split()[0] for line in text.splitlines() if line.strip())


@pytest.mark.parametrize("config", CONFIGS)
def test_the_numbers_are_the_answer_keys(reports, tarball_release, config):
    _, numbers = reports[config]
    expected = tarball_release.expected[config]
    wnids = _wnids(config)
    assert numbers["config"] == config
    assert sorted(numbers["splits"]) == sorted(expected)
    for split, images in expected.items():
        got = numbers["splits"][split]
        objects = [o for e in images.values() for o in e.objects]
        assert got["examples"] == len(images), split
        assert got["boxes"] == len(objects)
        assert got["without_boxes"] == sum(not e.objects for e in images.values())
        assert got["annotated"] == sum(e.annotated for e in images.values())
        per_class = Counter(
            (e.label for e in images.values() if e.label)
            if config == "clsloc"
            else (o.wnid for o in objects)
        )
        assert got["per_class"] == [per_class[w] for w in wnids], split
        assert got["per_class_counts"] == ("images" if config == "clsloc" else "objects")
        blacklisted = (
            sum(e.blacklisted for e in images.values())
            if config == "clsloc"
            else sum(o.blacklisted for o in objects)
        )
        assert got["blacklisted"] == blacklisted
        assert got["boxes_per_image"] == {
            str(k): v for k, v in sorted(Counter(len(e.objects) for e in images.values()).items())
        }
        assert got["sizes"] == [
            [w, h, n] for (w, h), n in sorted(Counter(e.size for e in images.values()).items())
        ]
        assert sum(got["area_histogram"]["counts"]) == len(objects)
        assert sum(got["aspect_histogram"]["counts"]) == len(objects)
        stored = [[float(np.float32(v)) for v in o.bbox] for o in objects]  # BBoxFeature: float32
        areas = Counter(min(int((b[2] - b[0]) * (b[3] - b[1]) * 20), 19) for b in stored)
        assert got["area_histogram"]["counts"] == [areas[i] for i in range(20)]
        # The sample: the 12 file names of lowest sha256, in that order.
        assert (
            got["sample"]
            == sorted(images, key=lambda n: hashlib.sha256(n.encode()).hexdigest())[:12]
        )
        published = PUBLISHED[config][split]
        assert got["published"]["examples"] == published
        assert got["published"]["difference"] == len(images) - published
        present = [(per_class[w], i) for i, w in enumerate(wnids) if per_class[w]]
        assert [c[0] for c in got["fewest"]] == [i for _, i in sorted(present)[:5]]
    if config == "clsloc":  # every validation label is the devkit's
        devkit = numbers["splits"]["validation"]["ground_truth"]
        assert (devkit["checked"], devkit["disagree"]) == (len(expected["validation"]), [])
        # The devkit's 50 per class over the release; the miniature's few images differ.
        assert devkit["per_class"] == [50] * len(wnids)
        got = numbers["splits"]["validation"]["per_class"]
        assert devkit["classes_differing"] == len(wnids)
        assert sum(got) == len(expected["validation"])
    assert numbers["problems"] == {"skipped_members": [], "unlisted_members": []}
    provenance = numbers["provenance"]
    built_at = datetime.datetime.fromisoformat(provenance["built_at"])
    assert built_at.utcoffset() == datetime.timedelta(0)
    assert 0 < provenance["duration_seconds"] < 900
    assert provenance["built_by_package_version"] == imagenet2017_tfds.__version__
    assert provenance["options"] == {
        "skip_bad_members": False,
        "allow_unverified": False,
        "decode_train": False,
        "workers": 0,
        "skip_space_check": False,
        "scratch_dir": None,
        "report": True,
    }
    inputs = provenance["inputs"]
    parts = ["clsloc", "devkit"] if config == "clsloc" else ["det", "det_test", "devkit"]
    assert sorted(inputs) == sorted(parts)
    assert inputs[config]["verified"] == "md5, sha256" and inputs[config]["passes"] == 1
    for part in parts:
        archive = (tarball_release.manual_dir / testing.ARCHIVES[part]).read_bytes()
        assert inputs[part]["size"] == len(archive)
        if part != "devkit":  # the devkit is checked by its content, against the package's
            assert inputs[part]["digest"] == {
                "md5": hashlib.md5(archive).hexdigest(),
                "sha256": hashlib.sha256(archive).hexdigest(),
            }
    # The members stored re-encoded: the answer key's CMYK JPEGs and PNGs.
    was = {"jpeg_cmyk": "a JPEG of 4 components (CMYK or YCCK)", "png": "a PNG"}
    members = [m for p in parts for m in tarball_release.members[p]]
    assert numbers["reencoded_images"] == sorted(
        [member, was[e.kind]]
        for images in expected.values()
        for e in images.values()
        if e.kind in was
        for member in members
        if member.endswith("/" + e.file_name)
    )


def test_stats_and_report_agree(reports, cli_builds):
    """`stats` prints the report's numbers (one reader, one accumulator)."""
    from tests.conftest import parse_table

    out = cli("stats", cli_builds)
    for config in CONFIGS:
        table = parse_table(out, config)
        for split, got in reports[config][1]["splits"].items():
            assert int(table[split][1]) == got["examples"]
            assert int(table[split][3]) == got["without_boxes"]
            assert int(table[split][6]) == sum(1 for n in got["per_class"] if n)


@pytest.mark.parametrize("config", CONFIGS)
def test_the_page_in_chromium(reports, tmp_path, config):
    page_file, numbers = reports[config]
    url = file_url(page_file)
    splits = list(numbers["splits"])
    with Browser() as browser:
        page = browser.open(url, width=WIDTH)
        assert page.console_errors() == []
        # Nothing but the file itself (its images are data: URIs inside it).
        assert [u for u in page.requests() if u != url and not u.startswith("data:")] == []
        assert page.requests()[0] == url
        assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH  # no sideways scroll
        for width in (NARROW, WIDTH):  # nor any table (a digest breaks where it must)
            page = browser.open(url, width=width)
            assert page.evaluate(TABLES_WIDER_THAN_THE_PAGE) == [], width
        ids = [f"grid-{s}" for s in splits] + [f"plot-sizes-{s}" for s in splits]
        ids += [f"plot-classes-{s}" for s, n in numbers["splits"].items() if n["classes_present"]]
        ids += [
            f"plot-{kind}-{s}"
            for s, n in numbers["splits"].items()
            if n["boxes"]
            for kind in ("area", "aspect", "boxes-per-image")
        ]
        places = page.evaluate(
            "Object.fromEntries(" + json.dumps(ids) + ".map(id => { const e = "
            "document.getElementById(id); if (!e) return [id, null]; const r = "
            "e.getBoundingClientRect(); const s = e.closest('section'); return [id, {left: "
            "r.left, right: r.right, top: r.top + scrollY, height: r.height, width: r.width, "
            "section: s && s.id, shown: getComputedStyle(e).visibility === 'visible' && "
            "e.getClientRects().length > 0}]; }))"
        )
        section = {
            "grid": "pictures",
            "plot-sizes": "images",
            "plot-classes": "classes",
            "plot-area": "boxes",
            "plot-aspect": "boxes",
            "plot-boxes-per-image": "boxes",
        }
        for element_id, box in places.items():
            assert box is not None, f"{element_id}: not on the page"
            assert box["shown"] and box["width"] > 100 and box["height"] > 50, (element_id, box)
            assert box["left"] >= 0 and box["right"] <= WIDTH, (element_id, box)
            assert box["section"] == section[element_id.rsplit("-", 1)[0]], (element_id, box)
        # The sections in their order down the page.
        tops = page.evaluate(
            "[...document.querySelectorAll('section')].map(s => [s.id, s.offsetTop])"
        )
        assert [t[0] for t in sorted(tops, key=lambda t: t[1])] == [
            "provenance",
            "splits",
            "classes",
            "boxes",
            "images",
            "pictures",
            "problems",
        ]
        assert page.evaluate("document.querySelectorAll('#grid-validation img').length") == len(
            numbers["splits"]["validation"]["sample"]
        )
        assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
        screenshot = _pixels(page.screenshot())
        assert screenshot.shape[1] == WIDTH
        assert (screenshot < 200).any(-1).mean() > 0.02, "the screenshot is blank"
        # The validation grid, with the boxes drawn over its pictures.
        grid = places["grid-validation"]
        clip = {
            "x": grid["left"],
            "y": grid["top"],
            "width": grid["width"],
            "height": grid["height"],
            "scale": 1,
        }
        shot = page.send(
            "Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True}
        )
        import base64

        pixels = _pixels(base64.b64decode(shot["data"]))
        assert (np.abs(pixels.astype(int) - YELLOW).sum(-1) < 40).sum() > 100, "no box drawn"
        assert np.unique(pixels.reshape(-1, 3), axis=0).shape[0] > 1000, "no picture drawn"
        pdf = page.pdf()
    assert pdf.startswith(b"%PDF-")
    sizes = set(re.findall(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", pdf))
    assert sizes and all(
        abs(float(w) - 595.3) < 1.5 and abs(float(h) - 841.9) < 1.5 for w, h in sizes
    ), sizes
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 2


def _pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB"))


def test_numbers_do_not_depend_on_how_examples_are_split_between_workers(cli_builds):
    """One SplitNumbers fed every example, and three fed a part each and merged in another
    order, give the same numbers and the same sample."""
    from imagenet2017_tfds.report import reading
    from imagenet2017_tfds.report.numbers import SplitNumbers

    for config in CONFIGS:
        shards = reading.shards(reading.dataset_folder(str(cli_builds), config))
        for split, files in shards.items():
            examples = [reading.parse(r) for shard in files for r in reading.records(shard)]
            whole = SplitNumbers(split, len(_wnids(config)))
            for example in examples:
                whole.add(example)
            parts = [SplitNumbers(split, len(_wnids(config))) for _ in range(3)]
            for i, example in enumerate(reversed(examples)):
                parts[i % 3].add(example)
            merged = parts[2].merge(parts[0]).merge(parts[1])
            assert merged.to_json() == whole.to_json(), (config, split)
            assert [s.image for s in merged.sample] == [s.image for s in whole.sample]


def test_records_parse_as_tfds_decodes_them(cli_builds):
    """reading.parse (our own Example class) gives what TFDS's own numpy decoding gives."""
    import tensorflow_datasets as tfds

    from imagenet2017_tfds.ilsvrc import tasks
    from imagenet2017_tfds.report import reading

    for config in CONFIGS:
        features = tasks.task(config).make_features()
        shards = reading.shards(reading.dataset_folder(str(cli_builds), config))
        for shard in (s for files in shards.values() for s in files):
            for record in reading.records(shard):
                ours = reading.parse(record)
                theirs = features.deserialize_example_np(
                    record, decoders={"image": tfds.decode.SkipDecoding()}
                )
                assert sorted(ours) == sorted(theirs)
                for key in theirs:
                    if key == "objects":
                        assert sorted(ours[key]) == sorted(theirs[key])
                        for column, values in theirs[key].items():
                            np.testing.assert_array_equal(
                                np.asarray(ours[key][column]).reshape(np.shape(values)),
                                np.asarray(values),
                                err_msg=column,
                            )
                    else:
                        assert ours[key] == theirs[key], key


def test_an_array_record_build_gives_the_same_numbers(reports, array_record_builds, tmp_path):
    for config in CONFIGS:
        cli("report", array_record_builds, "--config", config, "-o", tmp_path / "r.html")
        numbers = json.loads((tmp_path / "r.json").read_text())
        local = dict(reports[config][1], file_format="array_record")
        assert _timeless(numbers) == _timeless(local)
        # The build's own report: the same, its numbers computed as it wrote the shards.
        folder = array_record_builds / "imagenet2017" / config / readback.VERSION
        built = json.loads((folder / "report.json").read_text())
        assert built.pop("made") != numbers.pop("made")
        assert built == numbers


def _timeless(numbers: dict) -> dict:
    """A report's numbers without when its build ended and how long it took (two builds)."""
    provenance = dict(numbers["provenance"])
    assert provenance.pop("built_at") and provenance.pop("duration_seconds")
    return dict(numbers, provenance=provenance)


def test_nothing_built_is_named(tmp_path):
    result = __import__("subprocess").run(
        [
            *CLI,
            "report",
            str(tmp_path),
            "--config",
            "det",
            "-o",
            str(tmp_path / "r.html"),
        ],
        env=build_env(None),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {tmp_path}: no imagenet2017/det built there.")
    assert not (tmp_path / "r.html").exists()


@pytest.mark.stores
def test_a_dataset_in_gs(reports, cli_builds, tmp_path):
    """The report of the same dataset uploaded to a (fake) GCS bucket: the same numbers, the
    shards read from the bucket."""
    from imagenet2017_tfds.launch.stores import StoreBed

    with StoreBed() as bed:
        bed.make_bucket("gcs", "i2017-report")
        bed.upload(
            Path(cli_builds) / "imagenet2017" / "clsloc",
            "gs://i2017-report/data/imagenet2017/clsloc/",
        )
        bed.reset_counts()
        page = tmp_path / "gs.html"
        result = bed.run(
            [
                *CLI,
                "report",
                "gs://i2017-report/data",
                "--config",
                "clsloc",
                "-o",
                str(page),
            ],
            env=build_env(None),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        counts = bed.counts()
    assert json.loads(page.with_suffix(".json").read_text()) == reports["clsloc"][1]
    folder = Path(cli_builds) / "imagenet2017" / "clsloc" / "1.1.0"
    for shard in sorted(folder.glob("*.tfrecord-*")):  # each read once, whole
        url = f"gs://i2017-report/data/imagenet2017/clsloc/1.1.0/{shard.name}"
        assert counts.total("read", url=url) == shard.stat().st_size, shard.name


def test_a_difference_is_named_with_its_skipped_members(tmp_path):
    """A build with skip_bad_members that left out an undecodable image and an unparsable XML:
    one train example fewer than the answer key, both members on the page with their reasons,
    the image counted as the difference's cause, the XML as an annotation dropped."""
    from tests.conftest import tfds_build
    from tests.support.mutate import rewrite

    release = testing.write_release(tmp_path / "manual", form="tarball", parts=("clsloc",))
    image = "Data/CLS-LOC/train/n01440764/n01440764_9999.JPEG"
    xml = "Annotations/CLS-LOC/train/n02105855/n02105855_2934.xml"
    m = release.members["clsloc"]
    sums = rewrite(
        release,
        "clsloc",
        {
            image: b"\xff\xd8\xff\xe0 not really a jpeg",
            xml: m[xml].replace(b"<xmin>5</xmin>", b"<xmin>five</xmin>"),
        },
    )
    options = json.dumps({"name": "clsloc", "skip_bad_members": True})
    tfds_build(options, release.manual_dir, tmp_path / "data", sums)
    page = tmp_path / "r.html"
    cli("report", tmp_path / "data", "--config", "clsloc", "-o", page)
    numbers = json.loads((tmp_path / "r.json").read_text())
    train = numbers["splits"]["train"]
    assert train["examples"] == len(release.expected["clsloc"]["train"]) - 1
    assert train["published"]["skipped_images"] == 1
    assert train["published"]["skipped_annotations"] == 1
    skipped = numbers["problems"]["skipped_members"]
    assert sorted(s[0] for s in skipped) == sorted([image, xml])
    text = page.read_text()
    assert "1 image skipped" in text
    for member, reason in skipped:
        assert member in text and reason.split(":")[0] in text


def test_the_page_is_the_same_whatever_the_workers(reports, cli_builds, tmp_path):
    """Two runs on one build, one worker against one per shard: the same bytes."""
    for config in CONFIGS:
        page = tmp_path / f"{config}.html"
        cli("report", cli_builds, "--config", config, "-o", page, "--workers", 1)
        assert page.read_bytes() == reports[config][0].read_bytes()
        assert (
            page.with_suffix(".json").read_bytes()
            == reports[config][0].with_suffix(".json").read_bytes()
        )


def test_long_problem_lists_are_collapsed_and_counted_by_split():
    from imagenet2017_tfds.ilsvrc import tasks
    from imagenet2017_tfds.report import page
    from imagenet2017_tfds.report.numbers import SplitNumbers

    names = tasks.class_names("clsloc")
    skipped = [
        [f"Data/CLS-LOC/train/n01440764/n01440764_{i}.JPEG", "image: not decodable"]
        for i in range(11)
    ]
    metadata = {"skipped_members": skipped, "unlisted_members": ["Data/CLS-LOC/val/x.JPEG"]}
    splits = {s: SplitNumbers(s, len(names)) for s in ("train", "validation")}
    report = page.numbers_json("clsloc", splits, metadata, {}, names, "0")
    assert report["splits"]["train"]["published"]["skipped_images"] == 11
    assert report["splits"]["validation"]["published"]["unlisted_images"] == 1
    text = page.html_page(report, splits, names)
    problems = text[text.index('<section id="problems">') :]
    assert "<details><summary>Members skipped (skip_bad_members): 11</summary>" in problems
    assert "<h3>Images kept though no list names them: 1</h3>" in problems
    assert problems.count("image: not decodable") == 11


def test_the_builds_own_example_dicts_feed_the_numbers():
    """What the engine holds while it writes a shard (example_dicts' feature dicts, the image as
    stored bytes) feeds SplitNumbers as the shards' records do: a build can keep the numbers
    while it writes, with no second read."""
    from imagenet2017_tfds.ilsvrc import example_dicts
    from imagenet2017_tfds.ilsvrc.xml_annotations import Annotation, Box
    from imagenet2017_tfds.report import shards
    from imagenet2017_tfds.report.numbers import SplitNumbers

    jpeg = io.BytesIO()
    Image.new("RGB", (40, 20), "gray").save(jpeg, "JPEG")
    boxes = (Box("n01751748", 0, 0, 20, 10), Box("n01751748", 10, 5, 40, 20))
    item = example_dicts.Item(
        key="k",
        path="Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG",
        file_name="ILSVRC2012_val_00000001.JPEG",
        label=65,
        annotation=Annotation(40, 20, boxes),
    )
    numbers = SplitNumbers("validation", 1000)
    numbers.add(example_dicts.clsloc_example(item, jpeg.getvalue()), shards.ground_truth())
    got = numbers.to_json()
    assert (got["examples"], got["boxes"], got["per_class"][65], got["sizes"]) == (
        1,
        2,
        1,
        [[40, 20, 1]],
    )
    assert got["area_histogram"]["counts"][5] == 1 and got["area_histogram"]["counts"][11] == 1
    assert numbers.devkit_checked == 1 and numbers.devkit_disagrees == []  # image 1: sea snake
