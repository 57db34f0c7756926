"""The dataset card: README.md (the description), CITATIONS.bib and TAGS.txt in this folder,
which TFDS reads (get_metadata: the builder's pkg_dir_path) and which win over anything passed
to DatasetInfo; here, what the builder says beyond them."""

from pathlib import Path

# The card's folder, in the repository and in site-packages alike (package data).
FOLDER = Path(__file__).resolve().parent

HOMEPAGE = "https://image-net.org/challenges/LSVRC/2017/"

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

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download from https://image-net.org (an account is needed) into one folder, the manual_dir:
  clsloc: ILSVRC2017_CLS-LOC.tar.gz (155 GB), or Kaggle's
          imagenet_object_localization_patched2019.tar.gz (with LOC_val_solution.csv)
  det:    ILSVRC2017_DET.tar.gz and ILSVRC2017_DET_test_new.tar.gz
  both:   ILSVRC2017_devkit.tar.gz (optional: cross-checked when present)
Leave them as downloaded (they are read in place, never extracted), or put there the tree
`tar xzf FILE -C manual_dir` leaves (with or without its leading ILSVRC/ folder).
"""
