"""The package's own exceptions: each message names the file or member, what was expected,
what was found, and what to do."""


class Imagenet2017Error(Exception):
    """Base class of every error this package raises on purpose."""


class MissingInputError(Imagenet2017Error):
    """The manual folder does not hold what the requested config needs."""


class InputError(Imagenet2017Error):
    """Something in the manual folder is there but is not read as it is: a link that leads out
    of the folder, a broken link, a link loop. Not a MissingInputError: nothing is missing,
    and the fix is to the link, not a download."""


class ChecksumError(Imagenet2017Error):
    """An archive's size or digest differs from the checksums file, or is not known."""


class ArchiveError(Imagenet2017Error):
    """An archive cannot be read: truncated, corrupt gzip data, a damaged tar header."""


class AnnotationError(Imagenet2017Error):
    """An annotation XML cannot be parsed or names something unknown."""


class ImageError(Imagenet2017Error):
    """An image member is not an image this package can store."""


class ConsistencyError(Imagenet2017Error):
    """Two sources of the same fact disagree: devkit vs package, ImageSets vs archive."""


class DiskSpaceError(Imagenet2017Error):
    """A folder the build writes to has (or had) too little free space."""


class WorkerError(Imagenet2017Error):
    """A worker process of the local engine ended, or failed, without reporting why."""


class StorageError(Imagenet2017Error):
    """An object store cannot be used as asked: its client is not installed, it keeps failing
    after the client's retries, or TensorFlow cannot write a data dir there."""
