"""Class lists: sorted WNID order (imagenet2012/Keras indices) and the devkit's own ids."""

from imagenet2017_tfds import classes, devkit, readable_name


def test_clsloc_has_1000_sorted_wnids():
    lst = classes.clsloc()
    assert len(lst.wnids) == 1000 == len(set(lst.wnids))
    assert list(lst.wnids) == sorted(lst.wnids)
    assert lst.wnids[0] == "n01440764"


def test_first_validation_image_is_sea_snake_at_sorted_index_65():
    truth = devkit.clsloc_ground_truth()
    assert len(truth) == 50_000
    assert truth[0] == "n01751748"
    assert classes.clsloc().index("n01751748") == 65
    assert classes.clsloc().devkit_ids["n01751748"] == 490


def test_readable_names_for_both_configs():
    assert readable_name("clsloc", 0) == "tench, Tinca tinca"
    det = classes.det()
    assert len(det.wnids) == 200 and list(det.wnids) == sorted(det.wnids)
    assert readable_name("det", det.index("n02672831")) == "accordion"


def test_readable_labels_resolve_to_wnids():
    by_name = classes.clsloc().by_name
    assert by_name["scottish_deerhound"] == "n02092002"
    assert by_name["scottish deerhound, deerhound"] == "n02092002"


def test_blacklists_have_the_published_sizes():
    assert len(devkit.clsloc_blacklist()) == 1762
    assert sum(len(v) for v in devkit.det_blacklist().values()) == 409
