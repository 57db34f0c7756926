"""The data files shipped inside the package (class maps, ground truth, blacklists, checksums)."""

from __future__ import annotations

import importlib.resources


def path(name: str):
    return importlib.resources.files("imagenet2017_tfds") / "data" / name


def text(name: str) -> str:
    return path(name).read_text(encoding="utf-8")


def data(name: str) -> bytes:
    return path(name).read_bytes()
