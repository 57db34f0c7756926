"""Image bytes: told apart by content (never by a list of names), re-encoded only when needed.

A JPEG with 1 or 3 components is stored byte for byte; a CMYK/YCCK JPEG or any other format
(a PNG named .JPEG is in CLS-LOC train) becomes an RGB JPEG. Sniffing reads a few header
bytes; decoding every image would cost far more.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from imagenet2017_tfds.errors import ImageError

# An image declaring more pixels than this is refused before any decode (decompression bomb).
MAX_PIXELS = 1 << 28
REENCODE_QUALITY = 95
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclass(frozen=True)
class Sniffed:
    format: str  # "jpeg", "png", or "other"
    components: int = 0  # JPEG: 1 gray, 3 YCbCr/RGB, 4 CMYK/YCCK
    width: int = 0
    height: int = 0
    frame_at: int = 0  # JPEG: offset of the frame header (after any EXIF thumbnail)

    @property
    def stored_as_is(self) -> bool:
        return self.format == "jpeg" and self.components in (1, 3)


def sniff(data: bytes) -> Sniffed:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return Sniffed(
            "png",
            width=int.from_bytes(data[16:20], "big"),
            height=int.from_bytes(data[20:24], "big"),
        )
    if data[:3] != b"\xff\xd8\xff":
        return Sniffed("other")
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return Sniffed("jpeg")  # damaged marker stream: no frame header found
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in _SOF and pos + 10 <= n:
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            return Sniffed(
                "jpeg", components=data[pos + 9], width=width, height=height, frame_at=pos
            )
        if marker in (0xDA, 0xD9) or length < 2:
            break
        pos += 2 + length
    return Sniffed("jpeg")


def check_complete(data: bytes, sniffed: Sniffed, where: str) -> None:
    """Cheap structural checks that catch truncated or damaged files without decoding."""
    if sniffed.format == "jpeg":
        if sniffed.components == 0:
            raise ImageError(f"{where}: a JPEG without a readable frame header (damaged).")
        if sniffed.width * sniffed.height > MAX_PIXELS:
            raise ImageError(
                f"{where}: declares {sniffed.width}x{sniffed.height} pixels, over the limit "
                f"of {MAX_PIXELS}; refused without decoding."
            )
        # Bytes after the end marker are ignored by decoders; an end marker before the frame
        # header belongs to an EXIF thumbnail. Entropy-coded data never holds FF D9.
        if data.rfind(b"\xff\xd9") <= sniffed.frame_at:
            raise ImageError(f"{where}: the JPEG has no end marker: truncated or damaged.")


def to_rgb_jpeg(data: bytes, where: str) -> bytes:
    """Decode with Pillow and write a baseline RGB JPEG (deterministic for a Pillow version)."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ImageError(f"{where}: {im.width}x{im.height} pixels is over the limit.")
            rgb = im.convert("RGB")
            out = io.BytesIO()
            rgb.save(out, format="JPEG", quality=REENCODE_QUALITY)
            return out.getvalue()
    except ImageError:
        raise
    except Exception as e:  # Pillow raises many types for damaged data
        raise ImageError(
            f"{where}: not a decodable image ({type(e).__name__}: {e}). Replace the file, "
            "or build with skip_bad_members."
        ) from None


def storable_jpeg(data: bytes, where: str) -> bytes:
    """The bytes to store for one image member: itself, or an RGB JPEG re-encoding."""
    sniffed = sniff(data)
    if sniffed.stored_as_is:
        check_complete(data, sniffed, where)
        return data
    if sniffed.format == "jpeg":
        check_complete(data, sniffed, where)
    return to_rgb_jpeg(data, where)


def stored_from(data: bytes) -> str:
    """What a re-encoded member was (storable_jpeg stores it as an RGB JPEG), for people."""
    sniffed = sniff(data)
    if sniffed.format == "jpeg":
        return f"a JPEG of {sniffed.components} components (CMYK or YCCK)"
    if sniffed.format == "png":
        return "a PNG"
    return "a BMP" if data[:2] == b"BM" else "an image Pillow reads, neither JPEG nor PNG"


def check_decodes(data: bytes, where: str) -> None:
    """Decode the stored bytes fully with TensorFlow's own decoder: the one `tfds.load`
    uses, so an image that passes cannot stop a training run. It costs far more than the
    sniff, so the build does it for validation and test, and for train only when asked."""
    import tensorflow as tf

    try:
        tf.io.decode_jpeg(data, channels=3)
    except tf.errors.OpError as e:
        reason = e.message.splitlines()[0].rsplit("}} ", 1)[-1].split(" [Op:", 1)[0]
        raise ImageError(
            f"{where}: TensorFlow cannot decode this image ({reason}); "
            "training would stop on it. Replace the file, or build with skip_bad_members."
        ) from None
