"""The command-line tools (`imagenet2017-tfds ...`) and reading a built dataset."""
