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

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download from https://image-net.org (an account is needed) into one folder, the manual_dir:
  clsloc: ILSVRC2017_CLS-LOC.tar.gz (155 GB), or Kaggle's
          imagenet_object_localization_patched2019.tar.gz (with LOC_val_solution.csv)
  det:    ILSVRC2017_DET.tar.gz and ILSVRC2017_DET_test_new.tar.gz
  both:   ILSVRC2017_devkit.tar.gz (optional: cross-checked when present)
Leave them as downloaded (they are read in place, never extracted), or put there the tree
`tar xzf FILE -C manual_dir` leaves (with or without its leading ILSVRC/ folder).
"""
