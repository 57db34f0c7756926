from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="imagenet2017-tfds",
    version="1.0.0",
    description="ImageNet ILSVRC2017 (CLS-LOC and DET) as a TensorFlow Datasets builder",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["imagenet2017_tfds", "imagenet2017_tfds.*"]),
    package_data={"imagenet2017_tfds": ["data/*"]},
    install_requires=[
        "tensorflow>=2.16",
        "tensorflow-datasets>=4.9.7,<4.10",  # tested: 4.9.7 (make test-oldest), 4.9.10
        "apache-beam>=2.60",
        "lxml>=5",
        "rapidgzip>=0.14",
        "pillow>=10",
        "etils[epath]",
        "tqdm",
        "matplotlib",
        "array_record",
        "psutil",
        "mlcroissant",
        "importlib_resources",
    ],
    extras_require={"test": ["pytest", "hypothesis", "ruff"]},
    entry_points={"console_scripts": ["imagenet2017-tfds=imagenet2017_tfds.cli:main"]},
)
