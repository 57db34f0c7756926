import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
# The package's version, kept in the package (the dataset's is the builder's VERSION).
VERSION = re.search(
    r'__version__ = "([^"]+)"', (HERE / "imagenet2017_tfds" / "__init__.py").read_text()
)

setup(
    name="imagenet2017-tfds",
    version=VERSION.group(1),
    description="ImageNet ILSVRC2017 (CLS-LOC and DET) as a TensorFlow Datasets builder",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # imagenet2017/, TFDS's dataset folder for `tfds build` from the repository, is not installed.
    packages=find_packages(include=["imagenet2017_tfds", "imagenet2017_tfds.*"]),
    package_data={
        "imagenet2017_tfds": [
            "data/*",
            "launch/*.xml",
            "card/README.md",
            "card/CITATIONS.bib",
            "card/TAGS.txt",
        ],
    },
    install_requires=[
        "tensorflow>=2.16",
        "tensorflow-datasets>=4.9.7,<4.10",  # tested: 4.9.7 (make test-oldest), 4.9.10
        "apache-beam==2.77.0",  # what Beam builds accept: compat.BEAM_VERIFIED
        "lxml>=5",
        "rapidgzip>=0.14",
        "google-crc32c>=1.5",  # TFRecord framing in worker processes, without TensorFlow
        "pillow>=10",
        "etils[epath]",
        "tqdm",
        "array_record",
        "filelock",
        "gcsfs",  # gs:// for the package's own reads and writes (store.py), with no setting
        "mlcroissant",
        "importlib_resources",
    ],
    # Only a tool needs these; each says which extra to install when it is missing.
    extras_require={
        "bench": ["psutil"],
        "show": ["matplotlib"],
        "grain": ["grain"],
        "s3": ["s3fs"],  # s3:// archives and caches (a data dir needs TensorFlow's file system)
        "test": [
            "pytest",
            "hypothesis",
            "dill",
            "ruff",
            "psutil",
            "matplotlib",
            "grain",
            "s3fs",
            "moto[server]",
        ],
    },
    entry_points={"console_scripts": ["imagenet2017-tfds=imagenet2017_tfds.tools.cli:main"]},
)
