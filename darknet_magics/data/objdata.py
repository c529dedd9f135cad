"""obj.data as darknet reads it: the one reader every module uses, and the one edit we make (``backup=``).

darknet's ``read_data_cfg`` strips every whitespace character from a line (a path with a space comes out
without it), skips ``#`` and ``;`` comments, splits ``key=value`` at the first ``=``; its ``option_find`` returns
the FIRST line with a key, so a duplicated key keeps its first value. Reading it any other way means looking in
another backup folder than the one darknet writes into.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import DarknetMagicsError, StepError
from ..fileio import atomic_write_text
from ..untrusted import read_text

#: The first line `%yolo data` writes: its backup= is a default, and training then keeps each run's weights in the
#: run's own folder; an obj.data without it is the user's, and its backup= is where the weights go.
MARKER = "# written by darknet_magics (%yolo data): training keeps each run's weights in the run's folder"

__all__ = ["MARKER", "written_by_us", "DataEntry", "read_data", "read_data_file", "values", "with_backup", "train_images"]


@dataclass(frozen=True)
class DataEntry:
    """One ``key = value`` line of an obj.data: value as darknet reads it, as written, and its line number."""

    key: str
    value: str
    raw_value: str
    line: int


def read_data(text: str) -> dict[str, DataEntry]:
    """Parse obj.data text as darknet does (whitespace removed, comments skipped, the first key wins)."""
    entries: dict[str, DataEntry] = {}
    for i, raw in enumerate(text.splitlines(), 1):
        stripped = "".join(raw.split())
        if not stripped or stripped[0] in "#;" or "=" not in stripped:
            continue
        key, value = stripped.split("=", 1)
        entries.setdefault(key, DataEntry(key, value, raw.split("=", 1)[1].strip(), i))
    return entries


def read_data_file(path: Path) -> dict[str, DataEntry]:
    """`read_data` of a file; one that is not UTF-8 is refused with its line (`untrusted.BadInput`): a path with
    such bytes is not the one we would show or check."""
    return read_data(read_text(path))


def values(path: Path, *, as_written: bool = False) -> dict[str, str]:
    """{key: value} of an obj.data file: as darknet reads the values, or (`as_written`) as the file has them."""
    return {k: (e.raw_value if as_written else e.value) for k, e in read_data_file(path).items()}


def with_backup(text: str, backup: Path) -> str:
    """`text` with its ``backup=`` lines replaced by one naming `backup` (every other line kept as it is)."""
    if any(c.isspace() or not c.isprintable() for c in str(backup)):
        raise DarknetMagicsError(f"backup folder {backup} contains a space, which darknet strips from obj.data",
                                 fix="choose a backup folder whose path has no spaces")
    kept = [ln for ln in text.splitlines() if "".join(ln.split()).split("=", 1)[0] != "backup"]
    return "\n".join(kept + [f"backup = {backup}"]) + "\n"


def write_with_backup(data: Path, backup: Path, out: Path) -> Path:
    """A copy of the obj.data `data` at `out` whose ``backup=`` is `backup`."""
    atomic_write_text(out, with_backup(Path(data).read_text(encoding="utf-8", errors="replace"), backup))
    return out


def written_by_us(path: Path) -> bool:
    """True for an obj.data that `%yolo data` wrote (its first line is `MARKER`)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.readline().rstrip("\r\n") == MARKER
    except OSError:
        return False


def train_images(data: Path) -> int:
    """How many images the obj.data's train list names (max_batches=auto is sized from it)."""
    entry = read_data_file(data).get("train")
    if entry is None:
        raise StepError(f"{data} has no train= line", fix="write it with %yolo data first")
    try:
        with open(entry.value, "rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError as err:
        raise StepError(f"{data} line {entry.line}: its train list {entry.value} cannot be read ({err.strerror})",
                        fix="write the lists with `%yolo data` first (or correct train=)") from None
