"""The dataset card: descriptions, citation, homepage, terms (shared by the builder and docs)."""

from pathlib import Path

# TFDS's dataset folder: the `tfds build` module, README.md, CITATIONS.bib, TAGS.txt. It sits
# beside this package both in the repository and in site-packages (the wheel ships it).
DATASET_FOLDER = Path(__file__).resolve().parent.parent / "imagenet2017"

HOMEPAGE = "https://image-net.org/challenges/LSVRC/2017/"

CITATION = """\
@article{ILSVRC15,
  Author = {Olga Russakovsky and Jia Deng and Hao Su and Jonathan Krause and Sanjeev Satheesh and Sean Ma and Zhiheng Huang and Andrej Karpathy and Aditya Khosla and Michael Bernstein and Alexander C. Berg and Li Fei-Fei},
  Title = {{ImageNet Large Scale Visual Recognition Challenge}},
  Year = {2015},
  journal = {International Journal of Computer Vision (IJCV)},
  doi = {10.1007/s11263-015-0816-y},
  volume = {115},
  number = {3},
  pages = {211-252}
}"""

LICENSE = (
    "ImageNet terms of access: the images are for non-commercial research and educational "
    "use only, under the terms a user accepts when requesting access at https://image-net.org/download."
)

DESCRIPTIONS = {
    "clsloc": (
        "ILSVRC2017 classification and localization (CLS-LOC): 1,281,167 train images "
        "(544,546 with bounding boxes), 50,000 validation and 100,000 test images over 1000 "
        "classes. `label` and `objects/label` index the WNIDs in sorted order (as TFDS "
        "imagenet2012 and Keras); `annotated` tells images with an annotation XML; "
        "`blacklisted` marks the 1,762 validation images excluded from localization scoring."
    ),
    "det": (
        "ILSVRC2017 object detection (DET): 456,567 train images (negatives without "
        "objects among them), 20,121 validation images and the 2017 test set: the DET "
        "archive's own test images and the 5,500 new ones of ILSVRC2017_DET_test_new "
        "(65,500 in all; `file_name` starts with `ILSVRC2017_test_` for the new ones), over "
        "200 classes (WNIDs in sorted order). `objects/blacklisted` marks the image/class "
        "pairs excluded from scoring."
    ),
}

RELEASE_NOTES = {
    "1.0.0": "First release: clsloc and det configs.",
    "1.1.0": "det: one `test` split, the 2017 DET test set (the DET archive's test images and "
    "DET_test_new's); `test_previous` is gone. DET train lists as the devkit documents them. "
    "clsloc from Kaggle's release. Validation and test images decoded once while building.",
}

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download from https://image-net.org (an account is needed) into one folder, the manual_dir:
  clsloc: ILSVRC2017_CLS-LOC.tar.gz (155 GB), or Kaggle's
          imagenet_object_localization_patched2019.tar.gz (with LOC_val_solution.csv)
  det:    ILSVRC2017_DET.tar.gz and ILSVRC2017_DET_test_new.tar.gz
  both:   ILSVRC2017_devkit.tar.gz (optional: cross-checked when present)
Leave them as downloaded (they are read in place, never extracted), or put there the tree
`tar xzf FILE -C manual_dir` leaves (with or without its leading ILSVRC/ folder).
"""
