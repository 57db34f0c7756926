"""The ILSVRC2017 release's rules: its archives and tree, the roles of its members, catalogs, annotations, devkit, classes, split plans, example records and images. Plain Python."""
