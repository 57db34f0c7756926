"""The physical limit of this job here: read the file once, md5 in one thread while the
fastest decompressor found (rapidgzip, every core) reads the same file."""

import hashlib
import sys
import threading

import rapidgzip


def md5_of(path: str, out: list) -> None:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    out.append(h.hexdigest())


def main(path: str) -> None:
    digest: list = []
    thread = threading.Thread(target=md5_of, args=(path, digest))
    thread.start()
    with rapidgzip.RapidgzipFile(path, parallelization=0) as f:
        while f.read(8 << 20):
            pass
    thread.join()
    print(digest[0])


if __name__ == "__main__":
    main(sys.argv[1])
