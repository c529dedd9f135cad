"""Pretrained weights: the well-known files every tutorial starts with, downloaded once into the workspace.

`fetch_weights` resumes a broken download (HTTP Range on a ``.part`` file, or a restart when the server ignores
Range), verifies the size against the table or Content-Length, and renames atomically; a complete copy on the
drive is reused on later VMs. `make_partial` cuts the first N layers out of a weights file, as ``darknet partial``
does (how ``yolov3-tiny.conv.15`` is made).
"""
from __future__ import annotations

import os
import re
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Sequence

from .cfg import resolve_template
from .cfg_weights import layer_weights, read_weights_header
from ..errors import DarknetMagicsError
from ..fileio import atomic_write_bytes, copy_stream, remove_if_exists
from ..report import Reporter, TransferProgress
from ..safenames import safe_file_name
_CHUNK = 1 << 20

__all__ = ["KnownWeights", "KNOWN_WEIGHTS", "WeightsResult", "fetch_weights", "download_file", "make_partial"]

# ----------------------------------------------------------------------------------------------------------------
# Pretrained weights


@dataclass(frozen=True)
class KnownWeights:
    """A well-known weights file: where it lives, its size in bytes (None when we are not sure) and what it is."""

    name: str
    url: Optional[str]
    size: Optional[int]
    about: str
    # How to produce files that are not hosted: (base weights name, stock cfg name, layers to keep).
    partial_of: Optional[tuple[str, str, int]] = None


_AB = "https://github.com/AlexeyAB/darknet/releases/download"
_PJ = "https://pjreddie.com/media/files"

# Sizes: the .conv.N and tiny sizes are also what `cfg.layer_weights` computes from the stock cfgs (a test checks
# those it can: yolov3, yolov3-tiny, darknet53.conv.74, yolov3-tiny.conv.15).
KNOWN_WEIGHTS: dict[str, KnownWeights] = {k.name: k for k in [
    KnownWeights("yolov4-tiny.conv.29", f"{_AB}/darknet_yolo_v4_pre/yolov4-tiny.conv.29", 19789716,
                 "yolov4-tiny backbone (first 29 layers), for training yolov4-tiny(-custom).cfg"),
    KnownWeights("yolov4.conv.137", f"{_AB}/darknet_yolo_v3_optimal/yolov4.conv.137", 170038676,
                 "yolov4 backbone (first 137 layers), for training yolov4(-custom).cfg"),
    KnownWeights("darknet53.conv.74", f"{_PJ}/darknet53.conv.74", 162482580,
                 "Darknet-53 backbone, for training yolov3.cfg"),
    KnownWeights("yolov3-tiny.conv.15", None, 30973396,
                 "yolov3-tiny backbone (first 15 layers), for training yolov3-tiny.cfg; not hosted: made from "
                 "yolov3-tiny.weights like `darknet partial cfg/yolov3-tiny.cfg yolov3-tiny.weights "
                 "yolov3-tiny.conv.15 15`", partial_of=("yolov3-tiny.weights", "yolov3-tiny", 15)),
    KnownWeights("yolov4-tiny.weights", f"{_AB}/darknet_yolo_v4_pre/yolov4-tiny.weights", 24251276,
                 "yolov4-tiny trained on COCO (80 classes)"),
    KnownWeights("yolov4.weights", f"{_AB}/darknet_yolo_v3_optimal/yolov4.weights", 257717640,
                 "yolov4 trained on COCO (80 classes)"),
    KnownWeights("yolov3.weights", f"{_PJ}/yolov3.weights", 248007048, "yolov3 trained on COCO (80 classes)"),
    KnownWeights("yolov3-tiny.weights", f"{_PJ}/yolov3-tiny.weights", 35434956,
                 "yolov3-tiny trained on COCO (80 classes)"),
]}


@dataclass(frozen=True)
class WeightsResult:
    """What `fetch_weights` did: 'downloaded', 'resumed' (a .part was continued), 'cached' or 'made'."""

    path: Path
    action: Literal["downloaded", "resumed", "cached", "made"]
    bytes: int
    url: Optional[str] = None


def _file_name_from_url(url: str) -> str:
    """The file name a URL's path ends in, decoded: one safe name in the weights folder, never '..' (which
    `%2e%2e` decodes to) nor a name with control or shell characters (darknet gets this path)."""
    name = os.path.basename(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    if not name:
        raise DarknetMagicsError(f"cannot tell a file name from {url}", fix="give a URL that ends in the file name")
    return safe_file_name(name, what=f"weights file (from {url!r})")


def fetch_weights(name_or_url: str, into: Path, reporter: Optional[Reporter] = None, *,
                  expected_size: Optional[int] = None, timeout: float = 60.0, retries: int = 3,
                  search_dirs: Optional[Sequence[Path]] = None) -> WeightsResult:
    """Download a known weights file (see `KNOWN_WEIGHTS`) or a URL into `into`, once.

    An existing complete file is reused ('cached'). A ``.part`` left by a broken download is continued with an
    HTTP Range request ('resumed'), or started over when the server ignores Range. The size is checked against
    `expected_size`, the table, and the server's Content-Length before the atomic rename to the final name.
    ``yolov3-tiny.conv.15`` (not hosted) is cut from yolov3-tiny.weights as ``darknet partial`` would.

    Raises:
        DarknetMagicsError: unknown name, HTTP/network failure after `retries`, or a size that does not match.
    """
    reporter = reporter or Reporter()
    into = Path(into).expanduser()
    into.mkdir(parents=True, exist_ok=True)
    url, file_name, known, expected_size = _source(name_or_url, expected_size)
    dest = into / file_name
    if dest.is_file():
        size = dest.stat().st_size
        if expected_size is None or size == expected_size:
            return WeightsResult(dest, "cached", size, url)
        reporter.warn(f"{dest} is {size:,} bytes, expected {expected_size:,}: downloading it again")
    if url is None:
        assert known is not None and known.partial_of is not None
        base_name, cfg_name, layers = known.partial_of
        base = fetch_weights(base_name, into, reporter, timeout=timeout, retries=retries)
        cfg_text = resolve_template(cfg_name, search_dirs).read_text()
        make_partial(cfg_text, base.path, dest, layers)
        size = dest.stat().st_size
        if expected_size is not None and size != expected_size:
            raise DarknetMagicsError(f"made {dest.name} with {size:,} bytes, expected {expected_size:,}",
                                     fix=f"delete {base.path} and fetch again")
        return WeightsResult(dest, "made", size, None)
    return download_file(url, dest, reporter, expected_size=expected_size, timeout=timeout, retries=retries)


def _source(name_or_url: str, expected_size: Optional[int] = None
            ) -> tuple[Optional[str], str, Optional[KnownWeights], Optional[int]]:
    """(url, file name, known entry, expected size) for a known name or a URL; unknown names are an error."""
    known = KNOWN_WEIGHTS.get(name_or_url) or KNOWN_WEIGHTS.get(os.path.basename(name_or_url))
    if re.match(r"^[a-z][a-z0-9+.-]*://", name_or_url):
        file_name = _file_name_from_url(name_or_url)
        known = KNOWN_WEIGHTS.get(file_name) if expected_size is None else None
        if known and known.size is not None:
            expected_size = known.size
        return name_or_url, file_name, known, expected_size
    if known is not None:
        return known.url, known.name, known, expected_size if expected_size is not None else known.size
    raise DarknetMagicsError(f"unknown weights {name_or_url!r}",
                             fix="use one of " + ", ".join(KNOWN_WEIGHTS) + ", or a URL")


def weights_target(name_or_url: str, into: Path) -> Path:
    """Where `fetch_weights` puts `name_or_url` in `into` (the same name resolution; nothing is fetched)."""
    return Path(into).expanduser() / _source(name_or_url)[1]


def _request(url: str, have: int, timeout: float):
    """Open `url`, asking for the bytes from `have` on when a ``.part`` holds some."""
    request = urllib.request.Request(url, headers={"User-Agent": "darknet_magics"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    return urllib.request.urlopen(request, timeout=timeout)


def _part_is_complete(err: urllib.error.HTTPError, url: str, have: int, expected: Optional[int]) -> bool:
    """What an HTTP error means for the download: True when the ``.part`` is already whole, False when it must
    start over (416); other errors are raised: a client error as ours (asking again will not help), the rest
    as they are (retried)."""
    if err.code == 416 and have and (expected is None or have == expected):
        return True  # a crash between the last byte and the rename
    if err.code == 416:
        return False
    if 400 <= err.code < 500 and err.code not in (408, 429):
        raise DarknetMagicsError(f"{url}: HTTP {err.code} {err.reason}",
                                 fix="check the URL (and that the file is shared publicly)") from None
    raise err


def _resume_point(response, have: int, url: str, part: Path) -> tuple[int, Optional[int], str]:
    """Where the server's answer starts: ``(bytes kept, total size or None, file mode)``; a 206 continues the
    ``.part`` (its range must start where the ``.part`` ends), anything else starts over."""
    if response.status == 206 and have:
        m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", ""))
        if not m or int(m.group(1)) != have:
            raise DarknetMagicsError(f"{url}: server answered a range we did not ask for",
                                     fix="delete " + str(part) + " and fetch again")
        return have, (int(m.group(3)) if m.group(3) != "*" else None), "ab"
    # 200: the server ignored Range (or there was nothing to resume): start over.
    length = response.headers.get("Content-Length")
    return 0, (int(length) if length is not None else None), "wb"


def _receive(response, part: Path, mode: str, have: int, progress: TransferProgress) -> None:
    """Write the response's body to `part` (appended or from scratch), synced, with progress."""
    progress.bytes = have
    with open(part, mode) as f:
        copy_stream(response, f, lambda n: progress.add(0, n), _CHUNK)
        f.flush()
        os.fsync(f.fileno())
    progress.done()


def download_file(url: str, dest: Path, reporter: Optional[Reporter] = None, *, expected_size: Optional[int] = None,
                  timeout: float = 60.0, retries: int = 3) -> WeightsResult:
    """Download `url` to `dest` with progress, resuming a ``DEST.part`` with an HTTP Range request.

    The one resumable downloader, shared by `fetch_weights` and `staging.stage` (``stage URL``). The bytes go to
    ``DEST.part`` (continued on the next call when the server honours Range, restarted when it answers 200), the
    size is checked against `expected_size` and the server's Content-Length, and the file is renamed to `dest`
    only when complete, so `dest` existing means the download finished.

    Raises:
        DarknetMagicsError: HTTP or network failure after `retries`, or a size that does not match.
    """
    reporter = reporter or Reporter()
    download = _Download(url, Path(dest), reporter, expected_size, timeout)
    for attempt in range(retries + 1):
        have = download.part_size()
        try:
            if download.attempt(have):
                break
        except DarknetMagicsError:
            raise
        except (urllib.error.URLError, OSError, ConnectionError) as err:
            download.last_error = err
            reporter.warn(f"download of {download.dest.name} failed ({err}); retrying ({attempt + 1}/{retries})")
            time.sleep(min(2 ** attempt, 10) * 0.1)
    else:
        raise DarknetMagicsError(f"could not download {url}: {download.last_error}",
                                 fix="check the URL and the network, then run the same line again (it resumes)")
    part, dest = download.part, download.dest
    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        raise DarknetMagicsError(f"{dest.name}: got {size:,} bytes, expected {expected_size:,}",
                                 fix=f"run the same line again (it resumes), or delete {part}")
    os.replace(part, dest)
    return WeightsResult(dest, "resumed" if download.resumed else "downloaded", size, url)


class _Download:
    """One `download_file`: what its attempts share (the ``.part``, whether one resumed, the last failure)."""

    def __init__(self, url: str, dest: Path, reporter: Reporter, expected: int | None, timeout: float) -> None:
        self.url, self.dest, self.reporter, self.expected, self.timeout = url, dest, reporter, expected, timeout
        self.part = dest.with_name(dest.name + ".part")
        self.resumed = False
        self.last_error: BaseException | None = None

    def part_size(self) -> int:
        """The bytes the ``.part`` holds to resume from (one longer than the file is not ours: removed)."""
        have = self.part.stat().st_size if self.part.exists() else 0
        if self.expected is not None and have > self.expected:
            remove_if_exists(self.part)
            have = 0
        return have

    def attempt(self, have: int) -> bool:
        """One request from byte `have` on: True when the ``.part`` is complete, False to ask again at once (a
        416 that starts over, or a body cut short: `last_error`). A network error is raised for the caller to
        retry after a pause; a size that cannot be right is ours."""
        try:
            response = _request(self.url, have, self.timeout)
        except urllib.error.HTTPError as err:
            if _part_is_complete(err, self.url, have, self.expected):
                return True
            remove_if_exists(self.part)  # 416 on a .part the server does not know: start over
            return False
        with response:
            have, total, mode = _resume_point(response, have, self.url, self.part)
            self.resumed = self.resumed or mode == "ab"
            if self.expected is not None and total is not None and total != self.expected:
                raise DarknetMagicsError(
                    f"{self.url} is {total:,} bytes on the server, expected {self.expected:,}",
                    fix="the file changed or the URL is wrong; give expected_size= or check the URL")
            goal = total if total is not None else self.expected
            progress = TransferProgress(self.reporter, f"downloading {self.dest.name}", 0, goal or 0)
            _receive(response, self.part, mode, have, progress)
        got = self.part.stat().st_size
        if goal is not None and got < goal:
            self.last_error = DarknetMagicsError(f"download of {self.url} stopped at {got:,} of {goal:,} bytes")
            return False  # resume on the next attempt
        return True


def make_partial(cfg_text: str, weights: Path, out: Path, layers: int) -> Path:
    """Keep the first `layers` layers of `weights` (for `cfg_text`), as ``darknet partial CFG W OUT N`` does.

    darknet's partial loads the net with its images-seen count cleared and saves the header as version 0.2.0, so
    the result starts training from iteration 0.
    """
    sizes = layer_weights(cfg_text)
    with open(weights, "rb") as f:
        header = read_weights_header(f.read(20))
        if header is None:
            raise DarknetMagicsError(f"{weights} is too short to be a weights file", fix="download it again")
        f.seek(header.size)
        want = sum(layer.nbytes for layer in sizes[:layers])
        body = f.read(want)
    if len(body) != want:
        raise DarknetMagicsError(f"{weights} ends before layer {layers}", fix="download it again")

    data = struct.pack("<3iq", 0, 2, 0, 0) + body
    atomic_write_bytes(out, data)
    return out
