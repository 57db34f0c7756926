"""imagenet2017_tfds: the ImageNet ILSVRC2017 release as a TensorFlow Datasets builder.

Importing the package registers the builder `imagenet2017` (configs `clsloc`, `det`).
"""

from imagenet2017_tfds.builder import Imagenet2017, Imagenet2017Config
from imagenet2017_tfds.classes import readable_name

__all__ = ["Imagenet2017", "Imagenet2017Config", "readable_name"]
