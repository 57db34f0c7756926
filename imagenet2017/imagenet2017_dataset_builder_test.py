"""TFDS's own builder test, on dummy_data/: the miniature release as an extracted tree, written
by tests/support/dummy_data.py (tests/test_dataset_folder.py keeps the two in sync)."""

import os

from tensorflow_datasets import testing

from imagenet2017 import imagenet2017_dataset_builder


def _listing(folder) -> list[str]:
    files = (os.path.join(d, f) for d, _, names in os.walk(folder) for f in names)
    return sorted(os.path.relpath(path, folder) for path in files)


class _DummyData:
    """What the tests of both configs share (not a TestCase: pytest would collect it)."""

    DATASET_CLASS = imagenet2017_dataset_builder.Builder
    SKIP_CHECKSUMS = True  # manual download only: no URL is ever fetched

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dummy_files = _listing(cls.dummy_data)

    def tearDown(self):
        super().tearDown()
        # download_dir is patched to dummy_data/ too: a tree leaves no cache there.
        self.assertEqual(_listing(self.dummy_data), self.dummy_files)

    def test_session(self, *args, **kwargs):
        """tf.test.TestCase's session helper, not a test: pytest would collect it, and TF would skip
        it. TFDS still calls it for graph mode."""
        return super().test_session(*args, **kwargs)

    test_session.__test__ = False


class ClslocTest(_DummyData, testing.DatasetBuilderTestCase):
    BUILDER_CONFIG_NAMES_TO_TEST = ["clsloc"]
    SPLITS = {"train": 14, "validation": 10, "test": 5}


class DetTest(_DummyData, testing.DatasetBuilderTestCase):
    BUILDER_CONFIG_NAMES_TO_TEST = ["det"]
    SPLITS = {"train": 9, "validation": 10, "test": 7}  # test: both DET test sets


if __name__ == "__main__":
    testing.test_main()
