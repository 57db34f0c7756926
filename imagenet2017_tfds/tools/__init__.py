"""The command-line tools (`imagenet2017-tfds ...`)."""
