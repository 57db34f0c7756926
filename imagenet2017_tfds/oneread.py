"""One read of a release tarball whose annotations and lists come before its images.

A first build reads an archive twice: the scan (the digest beside it) locates every member
and parses the annotations, then generation reads the images back through the gzip index.
When the Annotations and ImageSets folders come before Data (tar lists a folder's
subfolders in the order the file system gives them; Kaggle's listing has Annotations,
ImageSets, Data), everything an image's example needs is known when the image passes, and
the scan, the digest and the generation share one pass:

- TFDS writes the splits in the order the archive holds them (`SplitOrder`): a split's turn
  comes when the stream reaches its first image. Images of a split whose turn has not come
  wait on disk (`Spill`); in tar's depth-first order that never happens.
- Each image becomes its item by the per-image step the plan uses (plans.*_ITEMS). When the
  stream ends the plan is made as usual, from the whole catalog, with the build's recorder;
  every example sent for writing must be one it planned, with the same item, and whatever it
  planned that the stream did not give (another archive's images) is read as in two reads.
- The digest reads the file just behind the stream (checksums.Pace): the disk serves one
  pass. It is joined before the last split ends, so a mismatch fails the build and TFDS
  never publishes its incomplete folder.
- Should the archive prove otherwise (an annotation after its image, a split's images in
  two places), `Abandoned` is raised; the builder finishes the scan and builds again from
  its cache: two reads, as without this module.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from imagenet2017_tfds import catalog, checksums, layout, prepare, ranges
from imagenet2017_tfds.errors import AnnotationError
from imagenet2017_tfds.examples import Item
from imagenet2017_tfds.prepare import Prepared
from imagenet2017_tfds.problems import COLLECT, Recorder
from imagenet2017_tfds.sources import Entry, Loaded, Tarball
from imagenet2017_tfds.tasks import Task
from imagenet2017_tfds.workers import Job

Parts = dict[str, list[tuple[Entry, Item]]]
ReadJobs = Callable[[Parts], list[Job]]  # jobs reading planned items from their sources


class Abandoned(Exception):
    """The archive's order does not allow one read after all; the message says where."""


class Stream:
    """The streamed tarball's members in order: metadata into its catalog as they pass,
    images held at the head until a split takes them. A thread reads ahead (decompression
    and tar headers), so reading overlaps this thread's work of feeding workers and TFDS."""

    AHEAD = 64  # members read ahead (a few MB of images)

    def __init__(self, source: Tarball, pace: checksums.Pace):
        self.source, self.pace = source, pace
        self.builder = catalog.Builder(source.name)
        self.images = True  # read the images' bytes (False: locate them only, a plain scan)
        self.head: tuple[Entry, bytes, layout.Role] | None = None
        self.ended = False
        self.late: list[str] = []  # metadata members found after the first image
        self._seen_image = False
        self._ahead: queue.Queue = queue.Queue(self.AHEAD)
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name="one-read", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        members = self.source.scan(lambda path: self.images or layout.is_metadata(path))
        try:
            for member in members:
                if not self._put(member):
                    return
            self._put(_END)  # the scan exported the gzip index
        except BaseException as e:  # raised again where the member was wanted
            self._put(_Failed(e))
        finally:
            members.close()  # in this thread: the archive's reader was opened here

    def _put(self, value) -> bool:
        while not self._stop.is_set():
            try:
                self._ahead.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    @property
    def catalog(self) -> catalog.Catalog:
        return self.builder.so_far()

    def next_image(self) -> tuple[Entry, bytes, layout.Role] | None:
        """The image at the head, advancing to it; None at the end of the archive."""
        while self.head is None and not self.ended:
            member = self._ahead.get()
            if member is _END:
                self.ended = True
                self.pace.release()
                break
            if isinstance(member, _Failed):
                raise member.error
            entry, data = member
            self.pace.advance(entry.offset + entry.size)
            role = self.builder.add(entry, data)
            if role is None:
                continue
            if role.kind == "image":
                self.head, self._seen_image = (entry, data, role), True
            elif self._seen_image:
                self.late.append(entry.path)
        return self.head

    def take(self) -> tuple[Entry, bytes, layout.Role]:
        head, self.head = self.head, None
        return head

    def drain(self) -> None:
        """The rest of the archive as a plain scan."""
        self.images = False
        self.head = None
        while self.next_image() is not None:
            self.take()

    def close(self, digest: bool = False) -> None:
        """Stops reading; the paced digest stops too, unless it is still wanted (`digest`:
        it then reads on at full speed)."""
        if digest:
            self.pace.release()
        else:
            self.pace.cancel()
        self._stop.set()
        self._reader.join()


_END = object()


@dataclass
class _Failed:
    error: BaseException


class Spill:
    """Images of a split whose turn has not come, on disk in stream order until it comes."""

    def __init__(self, path: str):
        self.path = path
        self._file = open(path, "wb")  # noqa: SIM115  (closed by `records` or `close`)

    def add(self, entry: Entry, item: Item, data: bytes) -> None:
        pickle.dump((entry, item, data), self._file, protocol=pickle.HIGHEST_PROTOCOL)

    def records(self) -> Iterator[tuple[Entry, Item, bytes]]:
        self._file.close()
        with open(self.path, "rb") as f:
            while True:
                try:
                    yield pickle.load(f)
                except EOFError:
                    break
        os.unlink(self.path)

    def close(self) -> None:
        self._file.close()


def ready(cat: catalog.Catalog, task: Task) -> bool:
    """Whether what the task's examples need came before the first image: its lists and its
    annotations (in depth-first order, then all of them)."""
    lists = any(t == task.challenge for t, _ in cat.imagesets)
    return lists and any(t == task.challenge for t, _ in cat.annotations)


def begin(
    manual_dir, task: Task, cache_dir, allow_unverified: bool, recorder: Recorder, spill_dir: str
) -> Prepared | OneRead:
    """A OneRead when the task's archive is a tarball not scanned before whose metadata come
    first; otherwise the two-read preparation (for an archive in another order, the scan this
    started is finished and cached)."""
    found = prepare.locate(manual_dir, task, cache_dir)
    part = task.parts[0]
    source = found.parts[part]
    cached = catalog.cached(source, cache_dir)
    if not isinstance(source, Tarball) or cached is not None:
        known = {id(source): cached} if cached is not None else None
        return prepare.prepare(manual_dir, task, cache_dir, allow_unverified, recorder,
                               found=found, known=known)  # fmt: skip
    verified: dict[str, str] = {}
    todo = prepare.verifiers(found, cache_dir, allow_unverified, recorder, verified)
    pace = checksums.Pace()
    verification = prepare.Verification(todo, {part: pace})
    stream = None
    try:
        stream = Stream(source, pace)
        cats = prepare.scan_parts(found, cache_dir, known={id(source): stream.catalog})
        stream.next_image()
        if ready(stream.catalog, task):
            prepare.record_catalog_problems(cats, found, recorder)
            return OneRead(found, task, part, stream, cats, verified, verification, recorder,
                           cache_dir, spill_dir)  # fmt: skip
        stream.drain()
        catalog.keep(source, cache_dir, stream.catalog)
    except BaseException:
        if stream is not None:
            stream.close(digest=True)
        pace.release()
        verification.join(recorder)  # a digest mismatch outranks what the scan found
        raise
    verification.join(recorder)
    prepare.record_catalog_problems(cats, found, recorder)
    return prepare.plan(found, task, cats, verified, recorder)


class OneRead:
    """A build reading its main archive once (see the module's docstring)."""

    def __init__(self, found, task: Task, part: str, stream: Stream, cats, verified,
                 verification: prepare.Verification, recorder: Recorder, cache_dir,
                 spill_dir: str):  # fmt: skip
        self.found, self.task, self.part, self.stream = found, task, part, stream
        self.cats, self.verified, self.verification = cats, verified, verification
        self.recorder, self.cache_dir, self.spill_dir = recorder, cache_dir, spill_dir
        # Items made as images pass: problems go nowhere (the plan records them for real).
        self._guess = prepare.context(found, cats, verified, Recorder(COLLECT, quiet=True))
        self._others = [c for p, c in cats.items() if c is not stream.catalog]
        self._recorded = {id(c): len(c.problems) for c in cats.values()}
        self.started: list[str] = []  # splits in the order their turn came
        self.sent: dict[str, dict[str, Item]] = {}  # split -> key -> item sent for writing
        self.spills: dict[str, Spill] = {}
        self.prepared: Prepared | None = None
        self._scan_complete = False

    # ------------------------------------------------------------ the order of the splits

    def split_of(self, role: layout.Role) -> str | None:
        if role.task != self.task.challenge or role.split_dir not in self.task.items:
            return None
        return self.task.items[role.split_dir][0]

    def next_split(self, left: list[str]) -> str:
        """Of the splits `left`, the one the stream has reached (else the first)."""
        head = self.stream.next_image() if not self.prepared else None
        split = self.split_of(head[2]) if head else None
        return split if split in left else left[0]

    # ------------------------------------------------------------ a split's work

    def _item(self, role: layout.Role, entry: Entry) -> tuple[Entry, Item] | None:
        if any(role.name in c.images.get((role.task, role.split_dir), ()) for c in self._others):
            return None  # another archive holds it too: the plan says which one it is read from
        return self.task.items[role.split_dir][1](self._guess, role.name, entry)

    def _job(self, batch: list[tuple[Entry, Item, bytes]], decode: bool, split: str) -> Job:
        sent = self.sent[split]
        for _, item, _ in batch:
            sent[item.key] = item
        source = Loaded(self.stream.source.name, {e: d for e, _, d in batch})
        return Job(self.task, source, [(e, i) for e, i, _ in batch], self.recorder.mode, decode)

    def jobs(self, split: str, decode: bool, read_jobs: ReadJobs) -> Iterator[Job]:
        """The jobs that write `split`: its images read ahead of its turn, then the stream
        while it holds the split's images, then (once the archive has ended and the plan is
        made) what the plan holds that the stream did not give."""
        self.started.append(split)
        self.sent[split] = {}
        batch: list[tuple[Entry, Item, bytes]] = []
        size = 0
        records = self.spills.pop(split).records() if split in self.spills else ()
        kept = self._planned(split) if self.prepared else None  # else checked at the end
        for entry, item, data in records:
            if kept is None or kept.get(item.key) == item:
                batch.append((entry, item, data))
                size += entry.size
                if size >= ranges.RANGE_BYTES:
                    yield self._job(batch, decode, split)
                    batch, size = [], 0
        entered = False
        while (head := self.stream.next_image()) is not None:
            entry, data, role = head
            owner = self.split_of(role)
            if owner is not None and owner != split:
                if owner in self.started:
                    raise Abandoned(f"{entry.path} comes after its split, {owner}, was written")
                if entered:
                    break  # this split's images have passed: the next split's turn
            self.stream.take()
            if owner is None or (pair := self._item(role, entry)) is None:
                continue
            if owner != split:
                self._spill(owner).add(*pair, data)
                continue
            entered = True
            batch.append((*pair, data))
            size += entry.size
            if size >= ranges.RANGE_BYTES:
                yield self._job(batch, decode, split)
                batch, size = [], 0
        if batch:
            yield self._job(batch, decode, split)
        if not self.stream.ended:  # the other archives' images too, checked at the end
            yield from self._send(read_jobs(self._other_parts(split)), split)
        else:  # the plan is made: what it holds that was not sent (other archives' too)
            self._finish()
            planned = self.prepared.splits[split]
            sent = self.sent[split]
            rest = {part: [(e, i) for e, i in items if i.key not in sent]
                    for part, items in planned.parts.items()}  # fmt: skip
            yield from self._send(
                read_jobs({p: items for p, items in rest.items() if items}), split
            )

    def _send(self, jobs: list[Job], split: str) -> Iterator[Job]:
        for job in jobs:
            for _, item in job.items:
                self.sent[split][item.key] = item
            yield job

    def _other_parts(self, split: str) -> Parts:
        """The split's images in the task's other archives (scanned whole before the stream
        began), made items the way the stream's are."""
        parts: Parts = {}
        for part in self.task.parts:
            cat = self.cats[part]
            if part == self.part:
                continue
            for split_dir, (owner, step) in self.task.items.items():
                if owner != split:
                    continue
                for image, entry in cat.images.get((self.task.challenge, split_dir), {}).items():
                    if pair := step(self._guess, image, entry):
                        parts.setdefault(part, []).append(pair)
        for pairs in parts.values():
            pairs.sort(key=lambda pair: (pair[0].offset, pair[0].path))
        return parts

    def _spill(self, split: str) -> Spill:
        if split not in self.spills:
            os.makedirs(self.spill_dir, exist_ok=True)
            self.spills[split] = Spill(os.path.join(self.spill_dir, f"{split}.spill"))
        return self.spills[split]

    def _planned(self, split: str) -> dict[str, Item]:
        return {item.key: item for _, item in self.prepared.splits[split].items}

    # ------------------------------------------------------------ the end of the archive

    def _finish(self) -> None:
        """The archive has ended: cache its scan, wait for the digests, make the plan, and
        check that what was sent is what the plan holds."""
        if self.prepared is not None:
            return
        rec = self.recorder
        self._complete_scan()
        for cat in {id(c): c for c in self.cats.values()}.values():
            for p in cat.problems[self._recorded[id(cat)] :]:  # annotations after the images
                rec.problem(p.kind, p.member, AnnotationError(p.reason))
        self.prepared = prepare.plan(self.found, self.task, self.cats, self.verified, rec,
                                     once=(self.part,))  # fmt: skip
        current = self.started[-1]
        for split in self.started:
            planned = self._planned(split)
            for key, item in self.sent[split].items():
                if planned.get(key) != item:
                    raise Abandoned(f"{item.path}: its example, written from the stream, is not "
                                    f"the one the plan holds (late members: {self.stream.late[:3]})")  # fmt: skip
            if split != current and planned.keys() - self.sent[split].keys():
                missing = sorted(planned.keys() - self.sent[split].keys())[0]
                raise Abandoned(f"{split} was written before the archive showed {missing}")

    def _complete_scan(self) -> None:
        """Reads the archive to its end (a plain scan from where the stream stands), caches
        its catalog and waits for the digests; once, whoever asks first."""
        if self._scan_complete:
            return
        self.stream.drain()
        catalog.keep(self.stream.source, self.cache_dir, self.stream.catalog)
        self.verification.join(self.recorder)
        self._scan_complete = True

    def abandon(self) -> None:
        """Finishes the scan (cached for the build that follows) and the digests."""
        try:
            self._complete_scan()
        finally:
            self.close()

    def close(self) -> None:
        """Stops what is still running (after a failure: the stream, the digest's read) and
        removes the spill."""
        if not self.stream.ended:
            self.stream.close()
        for spill in self.spills.values():
            spill.close()
        self.spills = {}
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.spill_dir)


class SplitOrder(dict):
    """The split generators of a one-read build. TFDS writes the splits in the order it
    iterates `items()`; each split is chosen when the one before has been written, as the
    one whose images the stream has reached. (Were TFDS to take the order up front, the
    splits would come in `splits` order and the spill would keep what comes early.)"""

    def __init__(self, one_read: OneRead, splits: list[str], make: Callable[[str], object]):
        super().__init__(dict.fromkeys(splits))  # the names, for TFDS's checks
        self._one_read, self._splits, self._make = one_read, splits, make

    def __getitem__(self, split: str):
        return self._make(split)

    def items(self):
        return _Items(self)

    def values(self):
        return (v for _, v in self.items())


class _Items:
    def __init__(self, order: SplitOrder):
        self._order = order

    def __len__(self) -> int:
        return len(self._order._splits)

    def __iter__(self):
        left = list(self._order._splits)
        while left:
            split = self._order._one_read.next_split(left)
            left.remove(split)
            yield split, self._order[split]
