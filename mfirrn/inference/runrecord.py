"""The record of a folder-scale run in its output folder: what the run is, what became of each input.

``OUT/mfirrn-run.json`` (the manifest: settings, model identity, code version, the inputs' root and checksum),
``OUT/mfirrn-run.inputs`` (the inputs, one path per line relative to the root) and ``OUT/mfirrn-run.jsonl``
(one line per finished input: ``done`` with its files, ``noface``, or ``failed`` with the reason; appended
as inputs finish, so a killed run keeps what it finished). :meth:`RunRecord.open` refuses to mix two
different runs in one folder, sweeps the temporaries a killed run left, and, resuming, says which inputs
are finished. One run at a time writes into a folder (a lock held while it runs).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from mfirrn.io.fileio import atomic_write
from mfirrn.io.resume import ResumeError, code_version, same_setting

__all__ = ["RUN_FORMAT", "MANIFEST", "JOURNAL", "INPUTS", "DONE", "NO_FACE", "FAILED", "InputResult", "RunRecord",
           "RunSummary", "inputs_digest", "no_face_line", "sweep_temporaries"]

PathLike = Union[str, Path]

#: Version of the run record and of the output layout; a folder of another format is not resumed.
RUN_FORMAT = 1
MANIFEST = "mfirrn-run.json"
JOURNAL = "mfirrn-run.jsonl"
INPUTS = "mfirrn-run.inputs"
LOCK = ".mfirrn-run.lock"
DONE, NO_FACE, FAILED = "done", "noface", "failed"
#: Files of the record itself (never outputs of an input).
RECORD_FILES = (MANIFEST, JOURNAL, INPUTS, LOCK)


@dataclass
class InputResult:
    """What one input came to: ``state`` :data:`DONE` (``files`` written, relative to the output folder, and
    ``faces``), :data:`NO_FACE` or :data:`FAILED` (``reason``: one line). ``rows``: the input's rows of the
    results table (columns -> lists), not kept in the record; ``seconds``: its processing time; ``small_faces``:
    for a done photo in which the detector found faces as small as it finds at the scale it saw it, the option that
    shows it the photo larger (more faces may be there), else ""; ``tries``: for a photo without a face, the options
    that may find a face it shows (``--detector-min-size 2000 for faces under 30 pixels (a group photo), ...``), else
    "" (:func:`no_face_line`); not kept in the record."""

    input: str
    state: str
    faces: int = 0
    files: list[str] = field(default_factory=list)
    reason: str = ""
    rows: Optional[dict[str, list]] = None
    seconds: float = 0.0
    small_faces: str = ""
    tries: str = ""

    def to_record(self) -> dict:
        d: dict[str, Any] = {"input": self.input, "state": self.state}
        if self.state == DONE:
            d.update(faces=self.faces, files=self.files)
        if self.reason:
            d["reason"] = self.reason
        return d


def no_face_line(reason: str, tries: str) -> str:
    """The whole line of a photo without a face: its ``reason`` (``PATH: no face found``, and in parentheses what is
    known of the photo) with the options that may find a face it shows (``tries``), as a lone photo's error says it.

    >>> no_face_line("a.jpg: no face found", "--detector dlib-hog, --box")
    'a.jpg: no face found (if it shows a face, try --detector dlib-hog, --box)'
    >>> no_face_line("a.jpg: no face found (2 detections below ...: --min-confidence 0 keeps them)", "--box")
    'a.jpg: no face found (2 detections below ...: --min-confidence 0 keeps them; or if it shows a face, try --box)'
    """
    if not tries:
        return reason
    tried = f"if it shows a face, try {tries}"
    return f"{reason[:-1]}; or {tried})" if reason.endswith(")") else f"{reason} ({tried})"


def inputs_digest(names: Sequence[str]) -> str:
    """sha256 of the input list (relative names, in order)."""
    h = hashlib.sha256()
    for n in names:
        h.update(os.fsencode(n) + b"\n")
    return h.hexdigest()


def sweep_temporaries(folder: PathLike) -> int:
    """Remove what a killed writer of this package left under ``folder``: ``.<name>.<random>.part`` files and
    folders (atomic writes, video staging) at any depth. Returns how many were removed."""
    n = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in list(dirnames):
            if name.startswith(".") and name.endswith(".part"):
                shutil.rmtree(Path(dirpath) / name, ignore_errors=True)
                dirnames.remove(name)
                n += 1
        for name in filenames:
            if name.startswith(".") and name.endswith(".part"):
                try:
                    os.unlink(Path(dirpath) / name)
                    n += 1
                except FileNotFoundError:
                    pass
    return n


def _describe_setting_changes(old: dict, new: dict) -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        if not same_setting(old.get(key), new.get(key)):
            diffs.append(f"{key} {_short(old.get(key))} -> {_short(new.get(key))}")
    return diffs


def _short(v: Any) -> str:
    s = "(none)" if v is None else ",".join(map(str, v)) if isinstance(v, list) else str(v)
    return s if len(s) <= 60 else s[:57] + "..."


class RunRecord:
    """The record of one run in ``out_dir`` (see the module docstring). Build it with :meth:`open`; call
    :meth:`add` as inputs finish and :meth:`close` at the end (or use it as a context manager)."""

    def __init__(self, out_dir: Path, manifest: dict, finished: dict[str, dict], notes: list[str],
                 lock_fd: int, fresh: bool = True) -> None:
        self.out_dir = out_dir
        self.fresh = fresh  # the folder held no run before this one
        self.manifest = manifest
        self.finished = finished  # input -> its last record line, from an earlier run (resume)
        self.notes = notes
        self._lock_fd = lock_fd
        self._journal = open(out_dir / JOURNAL, "ab")

    @classmethod
    def open(cls, out_dir: PathLike, *, root: PathLike, inputs: Sequence[str], settings: dict, model: dict,
             resume: bool) -> "RunRecord":
        """Start or resume the run of ``inputs`` (names relative to ``root``) with ``settings`` (option ->
        value, as the user types them; only those that change results) and ``model`` (its identity).

        Raises :class:`~mfirrn.io.resume.ResumeError` (one line, naming the fix) when ``out_dir`` holds
        another run, or files that are not a run's, or another process is writing into it.
        """
        out_dir = Path(out_dir)
        created = [d for d in (out_dir, *out_dir.parents) if not d.exists()]
        out_dir.mkdir(parents=True, exist_ok=True)
        new_lock = not (out_dir / LOCK).exists()
        try:
            lock_fd = _lock(out_dir)
        except BaseException:
            _undo(out_dir, new_lock, created)
            raise
        try:
            manifest = _manifest(root, inputs, settings, model)
            old, notes = _compare(out_dir, manifest, resume, inputs)
            n_swept = sweep_temporaries(out_dir)
            if n_swept:
                notes.append(f"removed {n_swept} temporary file(s) a killed run left in {out_dir}")
            finished = _read_journal(out_dir / JOURNAL) if (resume and old is not None) else {}
            if not finished:
                (out_dir / JOURNAL).write_bytes(b"")
            atomic_write(out_dir / INPUTS, b"".join(os.fsencode(n) + b"\n" for n in inputs))
            atomic_write(out_dir / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
            return cls(out_dir, manifest, finished, notes, lock_fd, fresh=old is None)
        except BaseException:
            os.close(lock_fd)
            _undo(out_dir, new_lock, created)
            raise

    @staticmethod
    def check(out_dir: PathLike, *, root: PathLike, inputs: Sequence[str], settings: dict, model: dict,
              resume: bool) -> None:
        """Raise the :class:`~mfirrn.io.resume.ResumeError` that :meth:`open` would raise for a folder that
        holds another run or foreign files, without writing anything (a command calls it before loading its
        model)."""
        out_dir = Path(out_dir)
        if out_dir.is_dir():
            _compare(out_dir, _manifest(root, inputs, settings, model), resume, inputs)

    def add(self, result: InputResult) -> None:
        """Record that an input finished (after its files are published)."""
        line = json.dumps(result.to_record(), sort_keys=True) + "\n"
        self._journal.write(line.encode())
        self._journal.flush()

    def close(self) -> None:
        if not self._journal.closed:
            self._journal.close()
        if self._lock_fd >= 0:  # the lock file goes with the run (removed while held: see _lock)
            try:
                os.unlink(self.out_dir / LOCK)
            except OSError:
                pass
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> "RunRecord":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def discard(self) -> None:
        """Remove the record (a first run that reconstructed nothing leaves nothing behind); the folder too when
        it is then empty."""
        self.close()
        for name in RECORD_FILES:
            try:
                os.unlink(self.out_dir / name)
            except FileNotFoundError:
                pass
        try:
            self.out_dir.rmdir()
        except OSError:
            pass

    def states(self) -> dict[str, dict]:
        """Input -> its last record line, over every run of this record (the journal as it is on disk)."""
        self._journal.flush()
        return _read_journal(self.out_dir / JOURNAL, repair=False)


def _manifest(root: PathLike, inputs: Sequence[str], settings: dict, model: dict) -> dict:
    return {"format": RUN_FORMAT, "root": str(Path(root).absolute()), "settings": settings, "model": model,
            "inputs": {"count": len(inputs), "sha256": inputs_digest(inputs), "list": INPUTS},
            "code": {"package": _package_version()}, "code_version": code_version()}


def _compare(out_dir: Path, manifest: dict, resume: bool, inputs: Sequence[str]) -> tuple[Optional[dict], list[str]]:
    """The run recorded in ``out_dir`` (``None`` for none) and notes; :class:`ResumeError` when ``out_dir``
    holds another run or files no run recorded (``inputs``: the new run's, to name what changed)."""
    notes: list[str] = []
    old = _read_manifest(out_dir)
    if old is None:
        others = [p.name for p in sorted(out_dir.iterdir()) if p.name not in RECORD_FILES
                  and not (p.name.startswith(".") and p.name.endswith(".part"))]
        if others:
            raise ResumeError(f"-o {out_dir} already holds files that no mfirrn run recorded (e.g. {others[0]}); "
                              f"choose a new or empty -o folder")
        return None, notes
    diffs = _differences(old, manifest, out_dir, inputs)
    if diffs:
        raise ResumeError(f"-o {out_dir} holds another run ({'; '.join(diffs)}); rerun with its inputs and options to "
                          f"{'resume' if resume else 'redo'} it, or choose a new -o (or delete {out_dir})")
    if old.get("code_version") != manifest["code_version"]:
        notes.append(f"the run in {out_dir} was started by mfirrn {old.get('code_version')}; continuing with "
                     f"{manifest['code_version']} (same package version)")
    return old, notes


def _undo(out_dir: Path, new_lock: bool, created: list[Path]) -> None:
    """A refused run leaves the folder as it found it: no lock file it made, no folders it made."""
    if new_lock:
        try:
            os.unlink(out_dir / LOCK)
        except FileNotFoundError:
            pass
    for d in created:
        try:
            d.rmdir()
        except OSError:
            break


def _package_version() -> str:
    from mfirrn import __version__

    return __version__


def _lock(out_dir: Path) -> int:
    """Hold the folder's lock file (created if missing). The run that ends removes the file while it holds it, so
    a lock won on a file that was removed meanwhile is given up and taken again on the new file."""
    import fcntl

    path = out_dir / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise ResumeError(f"another mfirrn run is writing into -o {out_dir}; wait for it to end, or choose "
                                  f"another -o") from None
            raise
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _read_manifest(out_dir: Path) -> Optional[dict]:
    path = out_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        old = json.loads(path.read_text())
        if not isinstance(old, dict) or "settings" not in old:
            raise ValueError
    except (OSError, ValueError):
        raise ResumeError(f"{path} is damaged; delete {out_dir} to start again") from None
    return old


def _differences(old: dict, new: dict, out_dir: Path, inputs: Sequence[str]) -> list[str]:
    diffs = []
    if old.get("format") != new["format"]:
        diffs.append(f"run format {old.get('format')} -> {new['format']}")
    if old.get("code", {}).get("package") != new["code"]["package"]:
        diffs.append(f"mfirrn {old.get('code', {}).get('package')} -> {new['code']['package']}")
    diffs += _describe_setting_changes(old.get("model", {}), new["model"])
    diffs += _describe_setting_changes(old.get("settings", {}), new["settings"])
    if old.get("root") != new["root"]:
        diffs.append(f"inputs under {old.get('root')} -> {new['root']}")
    elif old.get("inputs", {}).get("sha256") != new["inputs"]["sha256"]:
        diffs.append(_describe_input_change(out_dir / INPUTS, old.get("inputs", {}).get("count"), inputs))
    return diffs


def _describe_input_change(listing: Path, n_old: Optional[int], inputs: Sequence[str]) -> str:
    """``other inputs (N -> M: ...)``, naming an input that is new and one that is gone (from the run's listing).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = (Path(d) / "inputs").write_bytes(b"a.jpg\\nb.jpg\\n")
    ...     print(_describe_input_change(Path(d) / "inputs", 2, ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]))
    ...     print(_describe_input_change(Path(d) / "inputs", 2, ["b.jpg"]))
    ...     print(_describe_input_change(Path(d) / "inputs", 2, ["b.jpg", "a.jpg"]))
    other inputs (2 -> 4: c.jpg and 1 more are new)
    other inputs (2 -> 1: a.jpg is gone)
    other inputs (2 -> 2: the same in another order)
    """
    try:
        old_names = [os.fsdecode(s) for s in listing.read_bytes().splitlines()]
    except OSError:
        return f"other inputs ({n_old} -> {len(inputs)})"
    before, now = set(old_names), set(inputs)
    added = [n for n in inputs if n not in before]
    gone = [n for n in old_names if n not in now]

    def named(names: list[str], what: str) -> str:
        more = f" and {len(names) - 1} more are" if len(names) > 1 else " is"
        return f"{names[0]}{more} {what}"

    parts = ([named(added, "new")] if added else []) + ([named(gone, "gone")] if gone else [])
    return f"other inputs ({n_old} -> {len(inputs)}: {', '.join(parts) or 'the same in another order'})"


def _read_journal(path: Path, repair: bool = True) -> dict[str, dict]:
    """Input -> its last line; a line cut short by a kill is dropped (and, with ``repair``, cut from the file so
    the next line starts clean)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    end = data.rfind(b"\n") + 1
    if repair and end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
    out: dict[str, dict] = {}
    for line in data[:end].splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("input"), str):
            out[rec["input"]] = rec
    return out


def _by_option(pairs: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """(option, its inputs) for the (input, option) ``pairs``, options in the order they first come."""
    return [(o, [name for name, other in pairs if other == o]) for o in dict.fromkeys(o for _, o in pairs)]


def _names(inputs: list[str], limit: int) -> str:
    """``a, b, c and d`` / ``a, b, c and 2 more``: the first ``limit`` of ``inputs``, all of them when one more would
    be left."""
    shown = inputs if len(inputs) <= limit + 1 else inputs[:limit] + [f"{len(inputs) - limit} more"]
    return ", ".join(shown[:-1]) + f" and {shown[-1]}" if len(shown) > 1 else shown[0]


@dataclass
class RunSummary:
    """Counts of a run: ``done``, ``no_face``, ``failed`` [(input, reason)], ``earlier`` (done in an earlier run,
    skipped now), ``faces`` (faces written now), ``small_faces`` (the done inputs with an
    :attr:`InputResult.small_faces` option, and that option)."""

    total: int
    done: int = 0
    no_face: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    earlier: int = 0
    faces: int = 0
    no_face_reason: str = ""
    small_faces: list[tuple[str, str]] = field(default_factory=list)
    no_face_tries: list[tuple[str, str]] = field(default_factory=list)

    def add(self, result: InputResult, earlier: bool = False) -> None:
        if result.state == DONE:
            self.done += 1
            self.faces += result.faces
            self.earlier += earlier
            if result.small_faces:
                self.small_faces.append((result.input, result.small_faces))
        elif result.state == NO_FACE:
            self.no_face += 1
            self.earlier += earlier
            self.no_face_reason = self.no_face_reason or no_face_line(result.reason, result.tries)
            if result.tries:
                self.no_face_tries.append((result.input, result.tries))
        else:
            self.failed.append((result.input, result.reason))

    def line(self) -> str:
        """``150 inputs: 140 done (12 in an earlier run), 5 without a face, 5 failed``."""
        earlier = f" ({self.earlier} finished earlier)" if self.earlier else ""
        return (f"{self.total} input(s): {self.done} done, {self.no_face} without a face, {len(self.failed)} "
                f"failed{earlier}")

    def small_faces_lines(self, limit: int = 3) -> list[str]:
        """The notes on photos with faces as small as FaceBoxes finds at the scale it saw them, one per option that
        shows them larger ([] if none): the first ``limit`` photos named, all of them when one more would be left.

        >>> r = RunSummary(5, small_faces=[(f"{k}.jpg", "--detector-min-size 2000") for k in "abcd"])
        >>> r.small_faces_lines()[0].split("them (")[1].split(")")[0]
        'a.jpg, b.jpg, c.jpg and d.jpg'
        >>> r.small_faces.append(("e.jpg", "--detector-min-size 2000"))
        >>> r.small_faces_lines()[0].split("them (")[1].split(")")[0]
        'a.jpg, b.jpg, c.jpg and 2 more'
        """
        return [f"note: {len(inputs)} photo(s) hold faces near the smallest the detector finds at the scale it saw "
                f"them ({_names(inputs, limit)}); {option} may find more faces in them (slower)"
                for option, inputs in _by_option(self.small_faces)]

    def no_face_lines(self, limit: int = 3) -> list[str]:
        """The notes on photos without a face, one per set of options that may find a face they show ([] if none):
        the first ``limit`` photos named, all of them when one more would be left.

        >>> r = RunSummary(6, no_face_tries=[(f"{k}.jpg", "--box") for k in "abcde"])
        >>> r.no_face_tries.append(("f.png", "--detector-min-size 240, --box"))
        >>> print("\\n".join(r.no_face_lines()))
        note: 5 photo(s) without a face (a.jpg, b.jpg, c.jpg and 2 more); if they show faces, try --box
        note: 1 photo(s) without a face (f.png); if they show faces, try --detector-min-size 240, --box
        """
        return [f"note: {len(inputs)} photo(s) without a face ({_names(inputs, limit)}); if they show faces, "
                f"try {tries}" for tries, inputs in _by_option(self.no_face_tries)]

    def failure_lines(self, limit: int = 10, journal_kept: bool = True) -> list[str]:
        """The first ``limit`` failures, one line each, then where the others are: the run's journal, or, where
        no record was kept (nothing reconstructed), the lines printed as they happened (a run of more than
        ``limit`` inputs prints each failure when it comes)."""
        lines = [f"failed: {reason}" for _, reason in self.failed[:limit]]
        if len(self.failed) > limit:
            where = f"every reason: {JOURNAL}" if journal_kept else "each named above"
            lines.append(f"... and {len(self.failed) - limit} more failed ({where})")
        return lines
