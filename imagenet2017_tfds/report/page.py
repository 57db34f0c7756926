"""The report's JSON (every number the page shows) and its self-contained HTML page: styles
inline, plots as inline SVG, sample images as data: URIs with their boxes drawn over them. No
script, font or request of any kind (the page's Content-Security-Policy forbids them)."""

from __future__ import annotations

import base64
import html
import io
import json

from imagenet2017_tfds.ilsvrc import tasks
from imagenet2017_tfds.report import published, svg
from imagenet2017_tfds.report.numbers import SplitNumbers

NOT_RECORDED = "not recorded"
# The boxes' histograms: (plot id, JSON key, title, x axis, how an edge is labelled).
HISTOGRAMS = (
    ("area", "area_histogram", "box area / image area", "relative area", lambda e: f"{e:g}"),
    (
        "aspect",
        "aspect_histogram",
        "box aspect ratio (width/height)",
        "width / height, in pixels (log scale)",
        lambda e: f"{2**e:g}",
    ),
)
NAMED = 5  # fewest and most populated classes named per split
LISTED = 10  # problems shown before the rest is collapsed
THUMB = 240  # pixels: the sample images' longer side on the page


def numbers_json(
    config: str,
    splits: dict[str, SplitNumbers],
    metadata: dict,
    info: dict,
    names: list[str],
    package_version: str,
) -> dict:
    causes = published.causes(metadata)
    out = {
        "config": config,
        "dataset_version": info.get("version", NOT_RECORDED),
        "file_format": info.get("fileFormat", "tfrecord"),
        "provenance": provenance(metadata, package_version),
        "splits": {},
        "reencoded_images": metadata.get("reencoded_members", NOT_RECORDED),
        "problems": {
            "skipped_members": metadata.get("skipped_members", []),
            "unlisted_members": metadata.get("unlisted_members", []),
        },
    }
    for split, numbers in splits.items():
        entry = numbers.to_json()
        count, source = tasks.task(config).published.get(split, (None, ""))
        why = causes.get(
            split, {"skipped_images": [], "skipped_annotations": [], "unlisted_images": []}
        )
        entry["published"] = {
            "examples": count,
            "source": source,
            "difference": None if count is None else numbers.examples - count,
            "skipped_images": len(why["skipped_images"]),
            "skipped_annotations": len(why["skipped_annotations"]),
            "unlisted_images": len(why["unlisted_images"]),
        }
        ranked = sorted((n, i) for i, n in enumerate(numbers.per_class) if n)
        entry["fewest"] = [[i, names[i], n] for n, i in ranked[:NAMED]]
        entry["most"] = [
            [i, names[i], n] for n, i in sorted(ranked, key=lambda r: (-r[0], r[1]))[:NAMED]
        ]
        entry["classes_present"] = len(ranked)
        entry["negatives_share"] = (
            numbers.without_boxes / numbers.examples if numbers.examples else 0.0
        )
        if numbers.image_labels and split == "validation":
            expected = devkit_per_class(len(numbers.per_class))
            entry["ground_truth"] = {
                "checked": numbers.devkit_checked,
                "disagree": [list(d) for d in numbers.devkit_disagrees],
                "per_class": expected,
                "classes_differing": sum(
                    a != b for a, b in zip(numbers.per_class, expected, strict=True)
                ),
            }
        out["splits"][split] = entry
    return out


def devkit_per_class(num_classes: int) -> list[int]:
    """The devkit's validation images per label (its ground truth over the whole release)."""
    from imagenet2017_tfds.report import shards

    counts = [0] * num_classes
    for label in shards.ground_truth():
        counts[label] += 1
    return counts


def provenance(metadata: dict, package_version: str) -> dict:
    inputs = {
        part: {
            "release": value.get("release", NOT_RECORDED),
            "verified": value.get("verified", NOT_RECORDED),
            "passes": value.get("passes", NOT_RECORDED),
            "size": value.get("size", NOT_RECORDED),
            "digest": value.get("digest", NOT_RECORDED),
        }
        for part, value in sorted(metadata.get("inputs", {}).items())
    }
    return {
        "inputs": inputs,
        "options": metadata.get("options", NOT_RECORDED),
        "built_by_package_version": metadata.get("package_version", NOT_RECORDED),
        "report_package_version": package_version,
        "built_at": metadata.get("built_at", NOT_RECORDED),
        "duration_seconds": metadata.get("duration_seconds", NOT_RECORDED),
    }


# ------------------------------------------------------------------ the page

CSS = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       max-width: 1180px; margin: 0 auto; padding: 16px 20px 40px; }
h1 { font-size: 1.5em; margin: 0.2em 0; } h2 { font-size: 1.2em; margin-top: 1.6em;
  border-bottom: 1px solid #ccc; } h3 { font-size: 1.02em; margin: 1em 0 0.3em; }
table { border-collapse: collapse; margin: 0.4em 0; } .wide { overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #1e7b34; } .bad { color: #b3261e; font-weight: 600; } .muted { color: #777; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 8px 18px; }
svg.plot { width: 100%; height: auto; display: block; }
.single { max-width: 860px; }
svg.plot text { font: 12px system-ui, sans-serif; fill: #333; } svg.plot .title { font-weight: 600; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 10px; }
figure { margin: 0; } .picture { position: relative; line-height: 0; }
.picture img { width: 100%; height: auto; display: block; }
.picture svg { position: absolute; inset: 0; width: 100%; height: 100%; }
.picture rect { fill: none; stroke: #ffd400; stroke-width: 2; vector-effect: non-scaling-stroke; }
.tag { position: absolute; background: #ffd400; color: #000; font-size: 10px; line-height: 1.2;
       padding: 0 2px; white-space: nowrap; max-width: 95%; overflow: hidden; }
figcaption { font-size: 11px; line-height: 1.3; margin-top: 3px; overflow-wrap: anywhere; }
code { font-size: 0.92em; } td code { overflow-wrap: anywhere; } details { margin: 0.4em 0; } summary { cursor: pointer; }
@media print {
  @page { size: A4; margin: 12mm; }
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  h2 { break-after: avoid; } .plots { grid-template-columns: 1fr 1fr; }
  svg.plot, figure, tr { break-inside: avoid; }
  .grid { grid-template-columns: repeat(4, 1fr); }
  details > *:not(summary) { display: block; }
}
"""


def html_page(report: dict, splits: dict[str, SplitNumbers], names: list[str]) -> str:
    config = report["config"]
    short = [n.split(",")[0] for n in names]
    body = [
        f"<h1>imagenet2017/{html.escape(config)} {html.escape(str(report['dataset_version']))}: "
        "build report</h1>",
        f'<p class="muted">{len(splits)} splits, {sum(s.examples for s in splits.values()):,} '
        f"examples, {report['file_format']} shards. Every number here is in the JSON file "
        f"written beside this page; they were computed {html.escape(report.get('made', ''))}."
        "</p>",
        _provenance(report["provenance"]),
        _splits(report),
        _classes(report, short),
        _boxes(report, config),
        _images(report),
        _pictures(splits, short),
        _problems(report),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>\n"
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>imagenet2017/{html.escape(config)} build report</title>\n"
        f"<style>{CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    lines = [
        "<tr>"
        + "".join(
            f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    ]
    return f'<div class="wide"><table><tr>{head}</tr>{"".join(lines)}</table></div>'


def _e(value) -> str:
    text = html.escape(str(value))
    return f'<span class="muted">{text}</span>' if value == NOT_RECORDED else text


def _provenance(p: dict) -> str:
    rows = [
        [
            _e(part),
            _e(v["release"]),
            _e(v["verified"]),
            _e(v["passes"]),
            _e(v["size"]) if isinstance(v["size"], str) else f"{v['size']:,} bytes",
            _e(v["digest"])
            if isinstance(v["digest"], str)
            else "<br>".join(
                f"{html.escape(k)} <code>{html.escape(d)}</code>" for k, d in v["digest"].items()
            ),
        ]
        for part, v in p["inputs"].items()
    ]
    facts = [
        [
            "options",
            _e(p["options"])
            if isinstance(p["options"], str)
            else ", ".join(
                f"{html.escape(k)}: {html.escape(json.dumps(o))}" for k, o in p["options"].items()
            ),
        ],
        ["built by package version", _e(p["built_by_package_version"])],
        ["report by package version", _e(p["report_package_version"])],
        ["built at", _e(p["built_at"])],
        [
            "build duration",
            _e(p["duration_seconds"])
            if isinstance(p["duration_seconds"], str)
            else f"{p['duration_seconds']:,} s",
        ],
    ]
    return (
        '<section id="provenance"><h2>Provenance</h2>'
        + _table(["archive", "release", "verified", "passes", "size", "digest"], rows, {3})
        + _table(["", ""], facts)
        + "</section>"
    )


def _splits(report: dict) -> str:
    rows = []
    for split, s in report["splits"].items():
        p = s["published"]
        if p["examples"] is None:
            verdict = '<span class="muted">no published count</span>'
        elif p["difference"] == 0:
            verdict = '<span class="ok">as published</span>'
        else:
            named = []
            if p["skipped_images"]:
                named.append(_count_of(p["skipped_images"], "image") + " skipped")
            if p["unlisted_images"]:
                named.append(_count_of(p["unlisted_images"], "unlisted image") + " kept")
            explained = p["unlisted_images"] - p["skipped_images"]
            rest = p["difference"] - explained
            if rest == p["difference"]:
                named.append("no skipped or unlisted member explains it (a partial release?)")
            elif rest:
                named.append(f"{rest:+,} explained by no skipped or unlisted member")
            verdict = f'<span class="bad">{p["difference"]:+,}</span>: ' + "; ".join(named)
        rows.append(
            [
                html.escape(split),
                f"{s['examples']:,}",
                _count(p["examples"]),
                verdict,
                html.escape(p["source"]),
                f"{s['boxes']:,}",
            ]
        )
    return (
        '<section id="splits"><h2>Splits</h2>'
        + _table(
            ["split", "examples", "published", "difference", "published in", "boxes"],
            rows,
            {1, 2, 5},
        )
        + "</section>"
    )


def _count_of(n: int, what: str) -> str:
    return f"{n:,} {what}" + ("" if n == 1 else "s")


def _count(value) -> str:
    return "—" if value is None else f"{value:,}"


def _classes(report: dict, short: list[str]) -> str:
    parts = ['<section id="classes"><h2>Classes</h2>']
    for split, s in report["splits"].items():
        if not s["classes_present"]:
            parts.append(f"<h3>{html.escape(split)}</h3><p class='muted'>no labels</p>")
            continue
        what = s["per_class_counts"]
        marked = {i: f"{i} {short[i]}" for i, _, _ in s["fewest"] + s["most"]}
        plot = svg.bars(
            f"plot-classes-{split}",
            f"{split}: {what} per class, label order",
            s["per_class"],
            "label",
            what,
            marked,
        )
        fewest = ", ".join(f"{html.escape(short[i])} ({n:,})" for i, _, n in s["fewest"])
        most = ", ".join(f"{html.escape(short[i])} ({n:,})" for i, _, n in s["most"])
        parts.append(
            f"<h3>{html.escape(split)}</h3><div class='single'>{plot}</div><p>{s['classes_present']} of "
            f"{len(s['per_class'])} classes present. Fewest: {fewest}. Most: {most}.</p>"
        )
        if "ground_truth" in s:
            d = s["ground_truth"]
            if d["disagree"]:
                first = ", ".join(
                    f"{html.escape(f)} ({html.escape(short[a])}, devkit: {html.escape(short[b])})"
                    for f, a, b in d["disagree"][:LISTED]
                )
                parts.append(
                    f'<p class="bad">{len(d["disagree"])} of {d["checked"]:,} '
                    f"validation labels differ from the devkit's ground truth: {first}</p>"
                )
            else:
                parts.append(
                    f'<p class="ok">All {d["checked"]:,} validation labels agree with '
                    "the devkit's ground truth (ILSVRC2015_clsloc_validation_ground_"
                    "truth.txt).</p>"
                )
            differing = d["classes_differing"]
            verdict = "ok" if not differing else "bad"
            parts.append(
                f'<p class="{verdict}">{len(d["per_class"]) - differing:,} of '
                f"{len(d['per_class']):,} classes hold as many validation images as the "
                f"devkit's ground truth gives them; {differing:,} differ.</p>"
            )
    return "\n".join(parts) + "</section>"


def _boxes(report: dict, config: str) -> str:
    parts = ['<section id="boxes"><h2>Boxes</h2>']
    rows = [
        [
            html.escape(split),
            f"{s['boxes']:,}",
            f"{s['boxes'] / s['examples']:.2f}" if s["examples"] else "—",
            f"{s['without_boxes']:,}",
            f"{100 * s['negatives_share']:.1f}%",
            f"{s['annotated']:,}",
            f"{s['blacklisted']:,}",
        ]
        for split, s in report["splits"].items()
    ]
    parts.append(
        _table(
            [
                "split",
                "boxes",
                "per image",
                "images without boxes",
                "share",
                "annotated",
                "blacklisted",
            ],
            rows,
            {1, 2, 3, 4, 5, 6},
        )
    )
    for split, s in report["splits"].items():
        if not s["boxes"]:
            continue
        counts = s["boxes_per_image"]
        most = max(int(k) for k in counts)
        per_image = [counts.get(str(k), 0) for k in range(most + 1)]
        parts.append(
            f"<h3>{html.escape(split)}</h3><div class='plots'>"
            + svg.bars(
                f"plot-boxes-per-image-{split}",
                f"{split}: boxes per image",
                per_image,
                "boxes in the image",
                "images",
                x_ticks=[(0, "0"), (most, str(most))],
            )
            + "".join(
                svg.histogram(
                    f"plot-{kind}-{split}",
                    f"{split}: {title}",
                    *s[key].values(),
                    x_label,
                    edge_text=edge_text,
                )
                for kind, key, title, x_label, edge_text in HISTOGRAMS
            )
            + "</div>"
        )
    return "\n".join(parts) + "</section>"


def _images(report: dict) -> str:
    parts = ['<section id="images"><h2>Images</h2><div class="plots">']
    for split, s in report["splits"].items():
        parts.append(
            svg.scatter(
                f"plot-sizes-{split}",
                f"{split}: image sizes",
                [tuple(p) for p in s["sizes"]],
                "width (px)",
                "height (px)",
            )
        )
    parts.append("</div>")
    what = "Re-encoded images (stored as RGB JPEGs)"
    reencoded = report["reencoded_images"]
    if reencoded == NOT_RECORDED:
        parts.append(f'<p>{what}: <span class="muted">{NOT_RECORDED} by this build</span>.</p>')
    else:
        parts.append(_listed(what, ["member", "what it was"], reencoded))
    return "\n".join(parts) + "</section>"


def _pictures(splits: dict[str, SplitNumbers], short: list[str]) -> str:
    parts = [
        '<section id="pictures"><h2>Pictures</h2><p class="muted">Per split, the '
        "examples whose file names hash lowest (sha256): the same ones for every build "
        "of the same input.</p>"
    ]
    for split, numbers in splits.items():
        figures = [_figure(s, short) for s in numbers.sample]
        parts.append(
            f'<h3>{html.escape(split)}</h3><div class="grid" id="grid-{split}">'
            + "".join(figures)
            + "</div>"
        )
    return "\n".join(parts) + "</section>"


def _figure(sample, short: list[str]) -> str:
    rects, tags = [], []
    for (ymin, xmin, ymax, xmax), label in zip(sample.boxes, sample.box_labels, strict=True):
        rects.append(
            f'<rect x="{xmin:.4f}" y="{ymin:.4f}" width="{xmax - xmin:.4f}" '
            f'height="{ymax - ymin:.4f}"/>'
        )
        tags.append(
            f'<span class="tag" style="left:{100 * xmin:.1f}%;top:{100 * ymin:.1f}%">'
            f"{html.escape(short[label])}</span>"
        )
    caption = html.escape(sample.file_name)
    if sample.label >= 0:
        caption += f"<br><b>{html.escape(short[sample.label])}</b>"
    try:
        src = _thumbnail(sample.image)
    except (OSError, SyntaxError, ValueError):  # Pillow's ways of refusing an image
        # A train image is stored undecoded unless decode_train: the page says so instead
        # of failing the build (or the command) that writes it.
        src = _thumbnail(_grey(sample.width, sample.height))
        caption += '<br><span class="bad">Pillow cannot decode this image</span>'
    return (
        f'<figure><div class="picture"><img alt="{html.escape(sample.file_name)}" '
        f'src="{src}">'
        '<svg viewBox="0 0 1 1" preserveAspectRatio="none">'
        + "".join(rects)
        + "</svg>"
        + "".join(tags)
        + f"</div><figcaption>{caption}</figcaption></figure>"
    )


def _grey(width: int, height: int) -> bytes:
    """A grey JPEG of the image's proportions (1:1 when its header gave no size)."""
    from PIL import Image

    side = max(width, height, 1)
    size = (
        (max(1, THUMB * width // side), max(1, THUMB * height // side)) if width else (THUMB,) * 2
    )
    out = io.BytesIO()
    Image.new("RGB", size, "#999").save(out, "JPEG")
    return out.getvalue()


def _thumbnail(data: bytes) -> str:
    """A small JPEG of the stored image as a data: URI (the page stays small)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", (THUMB, THUMB))  # a JPEG decoded at a fraction of its size
        im = im.convert("RGB")
        im.thumbnail((THUMB, THUMB))
        out = io.BytesIO()
        im.save(out, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


def _problems(report: dict) -> str:
    skipped = report["problems"]["skipped_members"]
    unlisted = report["problems"]["unlisted_members"]
    parts = ['<section id="problems"><h2>Problems</h2>']
    for what, rows in (
        ("Members skipped (skip_bad_members)", [[m, r] for m, r in skipped]),
        (
            "Images kept though no list names them",
            [[m, "named by no ImageSets list"] for m in unlisted],
        ),
    ):
        parts.append(_listed(what, ["member", "reason"], rows))
    return "\n".join(parts) + "</section>"


def _listed(what: str, header: list[str], rows: list[list[str]]) -> str:
    """Rows of members under a heading with their count, collapsed when long."""
    if not rows:
        return f'<p class="ok">{what}: none.</p>'
    table = _table(header, [[html.escape(c) for c in row] for row in rows])
    if len(rows) > LISTED:
        return f"<details><summary>{what}: {len(rows):,}</summary>{table}</details>"
    return f"<h3>{what}: {len(rows):,}</h3>{table}"
