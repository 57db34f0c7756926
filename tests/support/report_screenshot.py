"""The README's picture of a build report, remade with:

    python -m tests.support.report_screenshot PAGE.html docs/report.png

PAGE.html: the miniature release's report (`make demo` writes /tmp/imagenet2017-demo/
report-clsloc.html). Headless Chromium at a laptop's width (tests/support/browser.py) shows the page;
its top (provenance, splits, the first class plot) and its validation pictures are put one
above the other, halved and reduced to 64 colours, so the PNG stays small.
"""

from __future__ import annotations

import base64
import io
import sys

from PIL import Image

from tests.support.browser import Browser, file_url

WIDTH = 1100


def shoot(page_file: str, output: str) -> None:
    with Browser() as browser:
        page = browser.open(file_url(page_file), width=WIDTH)
        parts = []
        for top_id, bottom_id in (
            ("provenance", "plot-classes-train"),
            ("grid-validation", "grid-validation"),
        ):
            box = page.evaluate(
                f"(() => {{ const a = document.getElementById({top_id!r}).getBoundingClientRect(),"
                f" b = document.getElementById({bottom_id!r}).getBoundingClientRect();"
                " return [a.top + scrollY - 8, b.bottom + scrollY + 8]; })()"
            )
            clip = {"x": 0, "y": box[0], "width": WIDTH, "height": box[1] - box[0], "scale": 1}
            shot = page.send(
                "Page.captureScreenshot",
                {"format": "png", "clip": clip, "captureBeyondViewport": True},
            )
            parts.append(Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB"))
    picture = Image.new("RGB", (WIDTH, sum(p.height for p in parts)), "white")
    y = 0
    for part in parts:
        picture.paste(part, (0, y))
        y += part.height
    picture = picture.resize((WIDTH // 2, picture.height // 2), Image.LANCZOS)
    picture.quantize(64).save(output, optimize=True)


if __name__ == "__main__":
    shoot(*sys.argv[1:])
