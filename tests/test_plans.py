"""The split plans over hand-built catalogs: the ILSVRC rules for membership, labels and
blacklists, and where each problem goes. No archive, no TensorFlow: milliseconds."""

from __future__ import annotations

import pytest

from imagenet2017_tfds.errors import AnnotationError, ConsistencyError
from imagenet2017_tfds.ilsvrc import classes, devkit, kaggle, plans, tasks
from imagenet2017_tfds.ilsvrc.catalog import Catalog
from imagenet2017_tfds.ilsvrc.xml_annotations import Annotation, Box
from imagenet2017_tfds.internal.problems import COLLECT, SKIP, Recorder
from imagenet2017_tfds.sources import Entry

CLS, DET = "CLS-LOC", "DET"


def catalog(name="a.tar.gz", images=None, lists=None, annotations=None) -> Catalog:
    """images: {(task, split folder): [image id]}; lists: {(task, name): [image id]}."""
    cat = Catalog(name)
    offset = 0
    for (task, split_dir), ids in (images or {}).items():
        table = cat.images.setdefault((task, split_dir), {})
        for image in ids:
            offset += 1000
            table[image] = Entry(offset, f"Data/{task}/{split_dir}/{image}.JPEG", 100)
    for (task, name_), ids in (lists or {}).items():
        cat.imagesets[(task, name_)] = "".join(f"{i} {n}\n" for n, i in enumerate(ids, 1))
    cat.annotations = annotations or {}
    return cat


def context(catalogs, *args, **kwargs) -> plans.Context:
    """The Context of the config whose archives `catalogs` holds (by part name)."""
    parts = tuple(a for t in tasks.TASKS.values() for a in t.parts if a.name in catalogs)
    return plans.Context(catalogs, *args, parts=parts, **kwargs)


def box(wnid, *coords):
    return Box(wnid, *(coords or (1, 2, 30, 40)))


def ann(*boxes):
    return Annotation(100, 80, tuple(boxes))


def files(plan: plans.SplitPlan) -> list[str]:
    return [item.file_name for _, item in plan.items]


TRAIN = ["n01440764/n01440764_1", "n01440764/n01440764_2", "n01443537/n01443537_5"]
TRUTH = devkit.clsloc_ground_truth()
VAL = {f"ILSVRC2012_val_{n:08d}": TRUTH[n - 1] for n in (1, 2, 3)}


def clsloc_catalog(train=TRAIN, train_list=TRAIN, val=VAL, val_list=None, val_ann=None):
    return catalog(
        images={
            (CLS, "train"): train,
            (CLS, "val"): list(val),
            (CLS, "test"): ["ILSVRC2012_test_00000001"],
        },
        lists={
            (CLS, "train_cls"): train_list,
            (CLS, "val"): val_list or list(val),
            (CLS, "test"): ["ILSVRC2012_test_00000001"],
        },
        annotations={(CLS, "val"): val_ann or {i: ann(box(w)) for i, w in val.items()}},
    )


# ---------------------------------------------------------------- CLS-LOC


def test_clsloc_labels_are_sorted_wnid_indices_and_val_labels_the_ground_truth():
    got = plans.clsloc(context({"clsloc": clsloc_catalog()}))
    lst = classes.clsloc()
    assert [i.label for _, i in got["train"].items] == [0, 0, 1]
    assert [i.label for _, i in got["validation"].items] == [lst.index(w) for w in VAL.values()]
    assert (
        lst.wnids[got["validation"].items[0][1].label] == "n01751748"
    )  # sea snake: the first validation image
    assert [i.label for _, i in got["test"].items] == [-1]
    assert files(got["train"]) == ["n01440764_1.JPEG", "n01440764_2.JPEG", "n01443537_5.JPEG"]


def test_clsloc_validation_blacklist_comes_from_the_devkit():
    black = min(devkit.clsloc_blacklist())
    val = {f"ILSVRC2012_val_{n:08d}": TRUTH[n - 1] for n in (1, black)}
    got = plans.clsloc_validation(context({"clsloc": clsloc_catalog(val=val)}))
    assert [i.blacklisted for _, i in got.items] == [False, True]


def test_a_listed_train_image_the_archive_lacks_stops_a_strict_build():
    cat = clsloc_catalog(train=TRAIN[:2])
    with pytest.raises(ConsistencyError, match="lists n01443537/n01443537_5, but the archive"):
        plans.clsloc_train(context({"clsloc": cat}))


def test_an_unlisted_clsloc_image_is_an_error_and_skipped_when_asked():
    cat = clsloc_catalog(train_list=TRAIN[:2])
    with pytest.raises(ConsistencyError, match="an image that .*train_cls.txt does not list"):
        plans.clsloc_train(context({"clsloc": cat}))
    rec = Recorder(SKIP)
    plan = plans.clsloc_train(context({"clsloc": cat}, rec))
    assert len(plan) == 2
    assert [(p.member, p.kind) for p in rec.problems] == [
        ("Data/CLS-LOC/train/n01443537/n01443537_5.JPEG", "extra")
    ]


def test_a_train_folder_outside_the_1000_classes_is_a_label_problem():
    odd = [*TRAIN, "n99999999/n99999999_1"]
    rec = Recorder(COLLECT)
    plans.clsloc_train(context({"clsloc": clsloc_catalog(train=odd, train_list=odd)}, rec))
    assert [p.kind for p in rec.problems] == ["label"]


def test_a_missing_list_is_named():
    cat = clsloc_catalog()
    del cat.imagesets[(CLS, "test")]
    with pytest.raises(ConsistencyError, match="ImageSets/CLS-LOC/test.txt is missing"):
        plans.clsloc_test(context({"clsloc": cat}))


def test_a_validation_image_without_annotation_is_an_annotation_problem():
    cat = clsloc_catalog(val_ann={"ILSVRC2012_val_00000001": ann(box(TRUTH[0]))})
    rec = Recorder(COLLECT)
    plan = plans.clsloc_validation(context({"clsloc": cat}, rec))
    assert len(plan) == 1
    assert {p.kind for p in rec.problems} == {"annotation"}
    assert len(rec.problems) == 2


def test_validation_annotation_against_the_ground_truth_only_when_content_must_vouch():
    wrong = dict(VAL)
    wrong["ILSVRC2012_val_00000002"] = "n01440764"  # the XML names another class
    cat = clsloc_catalog(val_ann={i: ann(box(w)) for i, w in wrong.items()})
    plan = plans.clsloc_validation(context({"clsloc": cat}))
    assert classes.clsloc().wnids[plan.items[1][1].label] == "n01440764"  # as annotated
    with pytest.raises(ConsistencyError, match="the annotation says n01440764, the devkit's"):
        plans.clsloc_validation(context({"clsloc": cat}, check_ground_truth=True))


def solution(rows: dict[str, str]) -> kaggle.Solution:
    text = "ImageId,PredictionString\n" + "".join(f"{k},{v}\n" for k, v in rows.items())
    return kaggle.Solution.parse(text, "LOC_val_solution.csv")


def kaggle_rows(shift=0.0):
    return {i: f"{w} {1 + shift} {2 + shift} {30 + shift} {40 + shift}" for i, w in VAL.items()}


def test_kaggle_solution_agreeing_within_a_pixel_passes():
    ctx = context({"clsloc": clsloc_catalog()}, val_solution=solution(kaggle_rows(-1)))
    assert len(plans.clsloc_validation(ctx)) == 3


@pytest.mark.parametrize("change", ["box", "class", "row", "extra_row"])
def test_kaggle_solution_disagreeing_names_the_image(change):
    rows = kaggle_rows()
    first = "ILSVRC2012_val_00000001"
    if change == "box":
        rows[first] = f"{VAL[first]} 1 2 33 40"
    elif change == "class":
        rows[first] = "n01440764 1 2 30 40"
    elif change == "row":
        del rows[first]
    else:
        rows["ILSVRC2012_val_00000009"] = "n01440764 1 2 30 40"
    ctx = context({"clsloc": clsloc_catalog()}, Recorder(COLLECT), val_solution=solution(rows))
    plan = plans.clsloc_validation(ctx)
    member = (
        "ILSVRC2012_val_00000009" if change == "extra_row" else f"Data/CLS-LOC/val/{first}.JPEG"
    )
    assert [p.member for p in ctx.recorder.problems] == [member]
    assert len(plan) == (3 if change == "extra_row" else 2)


def test_kaggle_solution_that_is_not_one_is_refused():
    with pytest.raises(ConsistencyError, match="line 2: expected `ImageId,WNID xmin"):
        kaggle.Solution.parse("ImageId,PredictionString\nx,n1 1 2 3\n", "s.csv")
    with pytest.raises(ConsistencyError, match="line 1: expected the header"):
        kaggle.Solution.parse("a,b\n", "s.csv")


# ---------------------------------------------------------------- DET

DET_TRAIN = [
    "ILSVRC2013_train/n02691156/n02691156_1",
    "ILSVRC2013_train_extra0/ILSVRC2013_train_00000005",
    "ILSVRC2014_train_0000/ILSVRC2014_train_00000001",
]
OLD = [f"ILSVRC2016_test_{n:08d}" for n in (1, 2, 3)]
NEW = [f"ILSVRC2017_test_{n:08d}" for n in (1, 2)]


def det_catalogs(train=DET_TRAIN, train_lists=None, old_list=OLD, new_list=NEW, same=False):
    train_lists = (
        {"train_1": DET_TRAIN[:1], "train_2": DET_TRAIN[1:]} if train_lists is None else train_lists
    )
    det = catalog(
        "det.tar.gz",
        images={
            (DET, "train"): train,
            (DET, "val"): [],
            (DET, "test"): OLD + (NEW if same else []),
        },
        lists={**{(DET, n): ids for n, ids in train_lists.items()}, (DET, "val"): []},
    )
    if same:  # one tree: one test.txt survived
        det.imagesets[(DET, "test")] = "".join(f"{i} 1\n" for i in new_list)
        return {"det": det, "det_test": det}
    if old_list is not None:
        det.imagesets[(DET, "test")] = "".join(f"{i} 1\n" for i in old_list)
    new = catalog(
        "new.tar.gz",
        images={(DET, "test"): NEW},
        lists={} if new_list is None else {(DET, "test"): new_list},
    )
    return {"det": det, "det_test": new}


def test_det_train_reference_is_the_union_of_the_per_class_lists_without_train_txt():
    plan = plans.det_train(context(det_catalogs()))
    assert sorted(i.file_name for _, i in plan.items) == sorted(f"{i}.JPEG" for i in DET_TRAIN)


def test_det_train_image_no_list_names_is_kept_with_a_notice():
    rec = Recorder()
    plan = plans.det_train(context(det_catalogs(train_lists={"train_1": DET_TRAIN[:1]}), rec))
    assert len(plan) == 3
    assert [(p.kind, p.member) for p in rec.notices] == [
        ("unlisted", f"Data/DET/train/{i}.JPEG") for i in sorted(DET_TRAIN[1:])
    ]
    assert not rec.problems


def test_det_train_txt_joins_the_reference_where_it_exists():
    rec = Recorder()
    lists = {"train": DET_TRAIN, "train_1": DET_TRAIN[:1]}
    assert len(plans.det_train(context(det_catalogs(train_lists=lists), rec))) == 3
    assert not rec.notices


def test_det_train_image_a_list_names_but_the_archive_lacks_is_an_error():
    with pytest.raises(
        ConsistencyError, match="lists ILSVRC2014_train_0000/ILSVRC2014_train_00000001"
    ):
        plans.det_train(context(det_catalogs(train=DET_TRAIN[:2])))


def test_det_train_without_any_list_is_an_error():
    with pytest.raises(ConsistencyError, match="no DET train list"):
        plans.det_train(context(det_catalogs(train_lists={})))


def test_det_box_outside_the_200_classes_is_a_label_problem():
    cats = det_catalogs()
    cats["det"].annotations = {(DET, "train"): {DET_TRAIN[0]: ann(box("n01440764"))}}
    with pytest.raises(AnnotationError, match="'n01440764' is not one of the 200 DET WNIDs"):
        plans.det_train(context(cats))


def test_det_validation_blacklist_is_per_image_and_class():
    index, wnids = next(iter(sorted(devkit.det_blacklist().items())))
    image = "ILSVRC2012_val_00000001"
    cats = det_catalogs()
    cats["det"].images[(DET, "val")] = {image: Entry(5, f"Data/DET/val/{image}.JPEG", 9)}
    cats["det"].imagesets[(DET, "val")] = f"{image} {index}\n"
    cats["det"].annotations = {(DET, "val"): {image: ann(box(sorted(wnids)[0]))}}
    ((_, item),) = plans.det_validation(context(cats)).items
    assert item.blacklisted_wnids == wnids


@pytest.mark.parametrize(
    "case, old_list, new_list",
    [
        ("each archive lists its own", OLD, NEW),
        ("DET_test_new lists all 65,500", OLD, OLD + NEW),
        ("only DET_test_new has a list, of all", None, OLD + NEW),
        ("the DET archive lists all", OLD + NEW, NEW),
        ("the other archive's images", NEW, OLD),
    ],
)
def test_det_test_is_both_sets_whichever_list_the_user_has(case, old_list, new_list):
    rec = Recorder()
    plan = plans.det_test(context(det_catalogs(old_list=old_list, new_list=new_list), rec))
    assert sorted(files(plan)) == sorted(f"{i}.JPEG" for i in OLD + NEW), case
    assert {part: len(v) for part, v in plan.parts.items()} == {"det": 3, "det_test": 2}
    assert not rec.problems and not rec.notices, case


def test_det_test_in_one_extracted_tree_where_one_list_survived():
    rec = Recorder()
    plan = plans.det_test(context(det_catalogs(same=True, new_list=NEW), rec))
    assert sorted(files(plan)) == sorted(f"{i}.JPEG" for i in OLD + NEW)
    assert [p.member for p in rec.notices] == [f"Data/DET/test/{i}.JPEG" for i in OLD]


def test_det_test_image_listed_by_neither_archive_is_missing():
    with pytest.raises(ConsistencyError, match="lists ILSVRC2017_test_00000009"):
        plans.det_test(context(det_catalogs(new_list=[*NEW, "ILSVRC2017_test_00000009"])))


def test_det_test_without_the_2017_images_is_an_error():
    cats = det_catalogs()
    cats["det_test"].images = {}
    with pytest.raises(ConsistencyError, match=r"no image of the 2017 DET test set"):
        plans.det_test(context(cats, Recorder(SKIP)))


def test_collect_mode_gathers_every_problem_of_every_split():
    cats = det_catalogs(train=DET_TRAIN[:1], new_list=[*NEW, "ILSVRC2017_test_00000009"])
    rec = Recorder(COLLECT)
    plans.det(context(cats, rec))
    assert [(kind, count) for kind, count, _ in rec.summary()] == [("missing", 3)]
