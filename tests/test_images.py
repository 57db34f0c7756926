"""Image sniffing by content: what is stored byte for byte and what is re-encoded."""

import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from imagenet2017_tfds.errors import ImageError
from imagenet2017_tfds.ilsvrc import images
from tests.support.noise import FAST, mutated


def encode(mode: str, fmt: str = "JPEG", size=(37, 21)) -> bytes:
    out = io.BytesIO()
    Image.effect_noise(size, 40).convert(mode).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize("mode, components", [("RGB", 3), ("L", 1), ("CMYK", 4)])
def test_sniff_jpeg_components_and_size(mode, components):
    s = images.sniff(encode(mode))
    assert (s.format, s.components, s.width, s.height) == ("jpeg", components, 37, 21)


def test_rgb_and_gray_jpegs_are_stored_byte_for_byte():
    for mode in ("RGB", "L"):
        data = encode(mode)
        assert images.storable_jpeg(data, "m") is data


@pytest.mark.parametrize("mode, fmt", [("CMYK", "JPEG"), ("RGB", "PNG"), ("RGB", "BMP")])
def test_cmyk_and_other_formats_become_rgb_jpeg(mode, fmt):
    out = images.storable_jpeg(encode(mode, fmt), "m")
    assert images.sniff(out).components == 3
    with Image.open(io.BytesIO(out)) as im:
        assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (37, 21))


def picture(size=(64, 48)) -> Image.Image:
    """A smooth RGB picture whose three channels differ (JPEG keeps such a picture within a few
    levels, where it cannot keep noise or sharp colour edges): red rises left to right, green
    top to bottom, blue is a bright mound in the middle."""
    w, h = size
    x, y = np.meshgrid(np.linspace(0, 1, w), np.linspace(0, 1, h))
    blue = 40 + 180 * np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.08)
    rgb = np.stack([30 + 200 * x, 20 + 210 * y, blue], axis=-1)
    return Image.fromarray(rgb.round().astype(np.uint8), "RGB")


def _saved(im: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return out.getvalue()


# A re-encoding shows the source's picture when each channel is within JPEG's loss of Pillow's
# own RGB conversion of the source (mean absolute difference under 3 of 255) and follows it
# (correlation over 0.98): on `picture()`, the re-encoding differs by under 1.5 and correlates
# over 0.999; inverted, swapped or greyed channels miss both bounds by far (checked below).
MAX_MEAN_DIFFERENCE = 3.0
MIN_CORRELATION = 0.98


def channel_agreement(got: np.ndarray, want: np.ndarray) -> list[tuple[float, float]]:
    """Per channel: (mean absolute difference, correlation) of two HxWx3 pictures."""
    got, want = got.astype(np.float64), want.astype(np.float64)
    out = []
    for c in range(3):
        g, w = got[..., c].ravel(), want[..., c].ravel()
        out.append((float(np.abs(g - w).mean()), float(np.corrcoef(g, w)[0, 1])))
    return out


def same_picture(got: np.ndarray, want: np.ndarray) -> bool:
    return got.shape == want.shape and all(
        d < MAX_MEAN_DIFFERENCE and r > MIN_CORRELATION for d, r in channel_agreement(got, want)
    )


@pytest.mark.parametrize("mode, fmt", [("CMYK", "JPEG"), ("RGB", "PNG"), ("RGB", "BMP")])
def test_a_reencoded_image_shows_the_sources_pixels_in_rgb(mode, fmt):
    """What is stored decodes to the source converted to RGB as Pillow converts it (CMYK by
    its inverse; a PNG's RGB as it is), within JPEG's loss."""
    source = _saved(picture().convert(mode), fmt)
    stored = images.storable_jpeg(source, "m")
    assert stored is not source and stored[:3] == b"\xff\xd8\xff"
    with Image.open(io.BytesIO(source)) as im:
        want = np.asarray(im.convert("RGB"))
    with Image.open(io.BytesIO(stored)) as im:
        got = np.asarray(im)
    assert same_picture(got, want), channel_agreement(got, want)
    # The bounds tell a wrong conversion: the source's channels inverted (CMYK read as if it
    # were RGB-like ink), in reverse order (BGR), or one grey level for all three.
    grey = np.repeat(want.mean(axis=-1, keepdims=True), 3, axis=-1)
    for wrong in (255 - want, want[..., ::-1], grey):
        assert not same_picture(got, wrong), channel_agreement(got, wrong)


def test_reencoding_is_deterministic():
    data = encode("CMYK")
    assert images.storable_jpeg(data, "m") == images.storable_jpeg(data, "m")


def test_truncated_jpeg_is_refused_with_the_member_named():
    data = encode("RGB")
    with pytest.raises(ImageError, match="Data/x.JPEG.*truncated"):
        images.storable_jpeg(data[: len(data) // 2], "Data/x.JPEG")


def test_bytes_after_the_end_marker_are_kept_as_they_are():
    data = encode("RGB") + b"\x00\x00trailing bytes\x01"
    assert images.storable_jpeg(data, "m") is data
    with Image.open(io.BytesIO(data)) as im:
        im.load()  # and a decoder reads it


def test_a_thumbnails_end_marker_does_not_hide_a_truncated_image():
    thumbnail = encode("RGB", size=(8, 8))
    payload = b"Exif\x00\x00" + thumbnail
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    main = encode("RGB")
    data = main[:2] + app1 + main[2:]
    assert images.storable_jpeg(data, "m") is data
    with pytest.raises(ImageError, match="Data/t.JPEG.*truncated"):
        images.storable_jpeg(data[: len(data) - len(main) // 2], "Data/t.JPEG")


def test_garbage_is_refused():
    with pytest.raises(ImageError, match="not a decodable image"):
        images.storable_jpeg(b"not an image at all", "Data/y.JPEG")


def test_enormous_declared_size_is_refused_without_decoding():
    data = bytearray(encode("RGB"))
    pos = data.find(b"\xff\xc0")
    data[pos + 5 : pos + 9] = (60000).to_bytes(2, "big") * 2  # 60000 x 60000
    with pytest.raises(ImageError, match="over the limit"):
        images.storable_jpeg(bytes(data), "m")
    png = bytearray(encode("RGB", "PNG"))
    png[16:24] = (70000).to_bytes(4, "big") * 2
    with pytest.raises(ImageError):
        images.storable_jpeg(bytes(png), "m")


def _jpeg() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


JPEGS = [_jpeg()]


@FAST
@given(st.one_of(st.sampled_from(JPEGS), st.binary(max_size=500), mutated(JPEGS)))
def test_image_handling_raises_only_its_own_errors(data):
    """A member is kept as it is (an RGB or grey JPEG, the intact one among them) or
    re-encoded into an RGB JPEG Pillow decodes whole, of the size Pillow reads in the member."""
    from PIL import Image

    try:
        out = images.storable_jpeg(data, "member.JPEG")
    except ImageError as e:
        assert data not in JPEGS
        assert str(e).startswith("member.JPEG"), str(e)
        return
    assert out[:3] == b"\xff\xd8\xff"
    if out is data:
        assert images.sniff(data).stored_as_is
        return
    assert data not in JPEGS
    with Image.open(io.BytesIO(out)) as kept, Image.open(io.BytesIO(data)) as member:
        kept.load()
        assert (kept.format, kept.mode, kept.size) == ("JPEG", "RGB", member.size)


def _sample(mode: str, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new(mode, (16, 12), {"RGB": (200, 30, 30), "L": 90, "CMYK": (0, 50, 100, 0)}[mode]).save(
        out, fmt
    )
    return out.getvalue()


# One of each kind the release holds: stored as it is (RGB, grey) or re-encoded (CMYK, PNG).
KINDS = [
    _sample("RGB", "JPEG"),
    _sample("L", "JPEG"),
    _sample("CMYK", "JPEG"),
    _sample("RGB", "PNG"),
]
COMPONENTS = {"L": 1, "RGB": 3, "CMYK": 4}


def _pillow_reads(data: bytes) -> tuple[str, int, tuple[int, int]] | None:
    """Format, components and size as Pillow reads them in the header; None where it cannot."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.format, COMPONENTS.get(im.mode, -1), im.size
    except Exception:  # Pillow raises many types for damaged data
        return None


@FAST
@given(st.one_of(st.sampled_from(KINDS), st.binary(max_size=500), mutated(KINDS)))
def test_sniffed_kind_is_what_pillow_reads(data):
    """Where the sniff finds a JPEG frame or a PNG header, Pillow (when it reads the bytes at
    all) finds that format, size and number of components; what Pillow reads as a PNG or a
    JPEG the sniff names so; each intact kind is sniffed whole."""
    sniffed, pillow = images.sniff(data), _pillow_reads(data)
    found = {"png": "PNG", "jpeg": "JPEG"}.get(sniffed.format)
    if pillow is not None and pillow[0] in ("PNG", "JPEG"):
        assert found == pillow[0]
    if pillow is not None and (sniffed.components or sniffed.format == "png"):
        components = sniffed.components if sniffed.format == "jpeg" else pillow[1]
        assert (found, components, (sniffed.width, sniffed.height)) == pillow
    if data in KINDS:
        assert pillow is not None and (sniffed.components or sniffed.format == "png")
        assert sniffed.stored_as_is == (pillow[:2] in (("JPEG", 1), ("JPEG", 3)))
