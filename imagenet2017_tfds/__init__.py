"""imagenet2017_tfds: the ImageNet ILSVRC2017 release as a TensorFlow Datasets builder.

Importing the package registers the builder `imagenet2017` (configs `clsloc`, `det`) with
TFDS: at once if TFDS is already imported, else as soon as it is. The command-line tools
(`imagenet2017-tfds verify`, ...) thus start without loading TFDS and TensorFlow.
"""

import importlib.abc
import importlib.util
import sys

__version__ = "1.0.0"  # the package's (setup.py reads it); the dataset's is the builder's VERSION
__all__ = ["Imagenet2017", "Imagenet2017Config", "class_names", "readable_name"]

_TFDS = "tensorflow_datasets"


class _RegisterAfterTfds(importlib.abc.MetaPathFinder):
    """Finds nothing itself: it wraps TFDS's own loader to import our builder after it."""

    def find_spec(self, name, path=None, target=None):
        if name != _TFDS or self not in sys.meta_path:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            importlib.import_module("imagenet2017_tfds.dataset.builder")

        spec.loader.exec_module = exec_module
        return spec


if _TFDS in sys.modules:
    from imagenet2017_tfds.dataset import builder as _builder  # noqa: F401  (registers it)
elif not any(isinstance(f, _RegisterAfterTfds) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterTfds())


def __getattr__(name: str):
    if name in ("Imagenet2017", "Imagenet2017Config"):
        from imagenet2017_tfds.dataset import builder

        return getattr(builder, name)
    if name in ("class_names", "readable_name"):
        from imagenet2017_tfds.ilsvrc import tasks

        return getattr(tasks, name)
    raise AttributeError(f"module 'imagenet2017_tfds' has no attribute {name!r}")
