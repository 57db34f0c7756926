"""Where members come from: a tarball read as a stream, or an extracted tree (one interface)."""

from imagenet2017_tfds.sources.base import Entry, Source
from imagenet2017_tfds.sources.tarball import Tarball
from imagenet2017_tfds.sources.tree import Tree

__all__ = ["Entry", "Source", "Tarball", "Tree"]
