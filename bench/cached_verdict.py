"""What a build pays for verification once the verdict is cached: the size check and the
verdict lookup, nothing read."""

import sys
import time

from imagenet2017_tfds.ilsvrc import checksums

archive, cache_dir = sys.argv[1], sys.argv[2]
start = time.perf_counter()
records, origin = checksums.load()
verifier = checksums.Verifier(archive, records[archive.rsplit("/", 1)[-1]], origin, cache_dir)
if verifier.needs_full_read(allow_unverified=False):
    sys.exit("no cached verdict: run a build first")
print(f"{time.perf_counter() - start:.4f} s")
