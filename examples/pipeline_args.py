"""The command-line options every input-pipeline example takes."""

import argparse


def parser(description: str, split: str = "train", size: int = 64) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data_dir", required=True, help="where `tfds build` wrote imagenet2017")
    p.add_argument("--split", default=split)
    p.add_argument("--steps", type=int, default=3, help="batches to take")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--size", type=int, default=size, help="side of the square images out")
    return p
