"""The TFDS dataset `imagenet2017`: the builder, which wires TFDS's hooks to the engine, where a build reads and writes, and what its metadata.json keeps."""
