"""The problems darknet's output can show: one factory per code, so that each `Problem` is built in one place.

The line rules (`diagnose.LineDiagnoser`), the whole-output judge (`judge.diagnose`) and the training loop all
build their problems here, so a code's message, fix and severity cannot drift between them. `ordered()` puts the
cause first: darknet often prints the consequences of a failure (cuDNN noise after a CUDA out-of-memory, a fatal
banner after a specific error, SIGKILL after a diverged run) and the user must read the cause as the headline.

The codes (stable; docs/troubleshooting.md has a section for each):

====================  ========  ==========================================================================
code                  severity  seen as
====================  ========  ==========================================================================
missing-file          error     ``Couldn't open file: X`` (pjreddie, AlexeyAB); hank-ai ``failed to open the
                                file "X"`` / ``file X does not seem to exist``; ``Cannot load image X``
                                (a warning: darknet goes on with a blank image)
space-in-path         error     a missing file whose path is a real path with its spaces stripped (darknet
                                strips the spaces out of obj.data values)
filters-mismatch      error     pjreddie ``Assertion `l.outputs == params.inputs'``; AlexeyAB ``filters= in the
                                [convolutional]-layer doesn't correspond to classes=``; hank-ai ``filters in
                                convolutional layer prior to [yolo] ... does not match``
opencv-image          error     AlexeyAB ``OpenCV exception: load_image_mat_cv`` / ``Error in
                                load_data_detection() - OpenCV`` (an image OpenCV cannot read; a segfault follows)
bad-label             error     AlexeyAB ``Wrong annotation: class_id = 3. But class_id should be [from 0 to 1]``
                                and the x/y/w/h variants
cuda-oom              error     ``CUDA Error: out of memory``, ``Try to set subdivisions``, hank-ai ``CUDA memory
                                allocation failed`` / ``CUDA malloc failed``
no-kernel-image       error     ``no kernel image is available for execution on the device`` (built for another
                                ARCH / compute capability)
cuda-driver           error     ``CUDA driver version is insufficient for CUDA runtime version`` (a warning for
                                AlexeyAB's ``Warning: CUDA-version is higher than Driver-version!``)
no-gpu                error     ``no CUDA-capable device is detected``, hank-ai ``=> no CUDA devices`` (a warning
                                for hank-ai's ``failed to set the GPU device``: it goes on on the CPU); a GPU build
                                that cannot load the driver's ``libcuda.so.1``; and any CUDA failure (``CUDA driver
                                version is insufficient``...) on a machine where nvidia-smi finds no GPU
cudnn-error           error     a cuDNN call failed: ``cuDNN Error: CUDNN_STATUS_...``, hank-ai ``cuDNN current
                                error: status=N``, ``cuDNN did not find a usable algorithm``
cuda-error            error     any other failed CUDA call (``CUDA Error: ...``, hank-ai ``current CUDA error``)
opencv-missing        error     ``error while loading shared libraries: libopencv_...so.N: cannot open shared
                                object file``
missing-library       error     the same for another library (libcudnn, libcudart, libcublas, ...)
truncated-weights     error     hank-ai ``xfread() ... expected to read N fields``; AlexeyAB ``Unexpected end of
                                wights-file`` and loading fewer layers than the network has (warnings)
nan-loss              error     the first iteration whose loss or avg loss is nan
already-trained       warning   final weights saved without a single iteration
crash-on-exit         warning   a glibc heap error (or SIGABRT) after a finished run
segfault              error     ``Segmentation fault``, hank-ai's ``signal #11`` banner, SIGSEGV
fatal-error           error     hank-ai's fatal-error banner, AlexeyAB ``Darknet error location``/``Error:``,
                                a heap error before the end, ``*** buffer overflow detected ***``, SIGABRT
interrupted           warning   ``^C`` echo, hank-ai's ``signal #2 (Interrupt)`` banner, SIGINT
no-display            error     ``qt.qpa.xcb: could not connect to display``, ``cannot open display``
unsupported-command   error     nothing printed and exit 0 (pjreddie has no ``detector map``)
killed                error     SIGKILL (out of RAM, a timeout or a watchdog), a ``Killed`` line
====================  ========  ==========================================================================

Not knowable from the text: a hang (darknet prints nothing more). Only the caller's clock tells it; the runner's
watchdog ends such a run, and the training loop reports it.
"""
from __future__ import annotations

import re
from typing import Iterable, Optional

from ..errors import Problem

__all__ = ["CODES", "PRIORITY", "ordered", "missing_file", "space_in_path", "image_not_loaded", "opencv_image", "filters_mismatch",
           "bad_label", "cuda_oom", "no_kernel_image", "cuda_driver", "no_gpu", "no_gpu_here", "cudnn_error", "cuda_error",
           "missing_library", "truncated_weights", "truncated_weights_loaded", "truncated_weights_file", "nan_loss",
           "already_trained", "crash_on_exit", "segfault", "fatal_error", "heap_error", "interrupted", "no_display",
           "unsupported_command", "killed", "exit_status", "sigabrt"]

# Which problem leads when a run shows several: the cause before what darknet printed as its consequence. Errors
# come before warnings; among errors, a lower rank first; equal ranks keep the order they appeared in.
PRIORITY: dict[str, int] = {
    # the environment: nothing after these can be trusted
    "opencv-missing": 0, "missing-library": 0, "no-gpu": 0, "cuda-driver": 0, "no-kernel-image": 0, "cuda-oom": 0,
    # the inputs
    "missing-file": 1, "space-in-path": 1, "filters-mismatch": 1, "bad-label": 1, "truncated-weights": 1,
    "opencv-image": 1,
    "no-display": 1, "unsupported-command": 1,
    # training went wrong (a later SIGKILL or crash is its consequence)
    "nan-loss": 2,
    # a library call failed for a reason of its own
    "cudnn-error": 3, "cuda-error": 4,
    # how it died: says least about why
    "segfault": 5, "fatal-error": 5, "killed": 6, "interrupted": 6, "already-trained": 7, "crash-on-exit": 7,
}
CODES: tuple[str, ...] = tuple(PRIORITY)
_SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}


def ordered(problems: Iterable[Problem]) -> list[Problem]:
    """The problems with the cause first: errors before warnings, then by `PRIORITY` (stable otherwise)."""
    return sorted(problems, key=lambda p: (_SEVERITY_RANK.get(p.severity, 3), PRIORITY.get(p.code, 5)))


# --------------------------------------------------------------------------------------------- the inputs
_FIX_PATH = ("check the path (relative paths are relative to darknet's working directory) and the paths inside "
             "obj.data and train.txt/valid.txt")


def missing_file(path: str, evidence: Optional[str] = None) -> Problem:
    """darknet could not open `path`."""
    return Problem("missing-file", f"darknet could not open {path!r}", fix=_FIX_PATH, file=path, evidence=evidence)


def space_in_path(path: str, original: str, evidence: Optional[str] = None) -> Problem:
    """darknet looked for `path`, which is the real `original` with its spaces stripped."""
    return Problem("space-in-path", f"darknet looked for {path!r}, which is {original!r} with its spaces removed "
                   "(darknet strips spaces out of obj.data values)",
                   fix="move the data to a folder without spaces, or point obj.data at a symlink without spaces "
                       "(ln -s)", file=path, evidence=evidence)


def image_not_loaded(path: str, evidence: Optional[str] = None, iteration: Optional[int] = None) -> Problem:
    """``Cannot load image X``: darknet goes on with a blank image (training learns nothing from it; `test`
    predicts on nothing)."""
    return Problem("missing-file", f"darknet could not load the image {path!r} and used a blank image instead",
                   fix="check that the image exists and is a readable image (a typo such as .jpgg, Windows "
                       "backslashes or CRLF line ends in train.txt/valid.txt)", severity="warning", file=path,
                   iteration=iteration, evidence=evidence)


def opencv_image(evidence: Optional[str] = None, iteration: Optional[int] = None) -> Problem:
    """AlexeyAB's ``OpenCV exception: load_image_mat_cv``: OpenCV threw reading an image of the list (a segfault
    often follows, as in AlexeyAB#5469)."""
    return Problem("opencv-image", "OpenCV could not read an image of the list (OpenCV exception: "
                   "load_image_mat_cv): a file that is not an image, a damaged one, or a wrong path",
                   fix="run `%yolo check` on the obj.data (it opens every image and names the bad ones), remove or "
                       "re-save them; if every image fails, reinstall OpenCV (apt-get install libopencv-dev) and "
                       "rebuild darknet", iteration=iteration, evidence=evidence)


_FIX_FILTERS = ("set filters=(classes + 5) * masks in the [convolutional] layer just before each [yolo] layer "
                "(e.g. 18 for 1 class and 3 masks), and classes= in each [yolo] layer")


def filters_mismatch(evidence: Optional[str] = None) -> Problem:
    """The filters= before a [yolo]/[region] layer do not match its classes=."""
    return Problem("filters-mismatch", "the filters= of a [convolutional] layer before a [yolo] layer do not match "
                   "its classes= and mask=", fix=_FIX_FILTERS, evidence=evidence)


def bad_label(evidence: Optional[str] = None, file: Optional[str] = None) -> Problem:
    """AlexeyAB's ``Wrong annotation``: a label line with a class id >= classes or coordinates outside 0..1."""
    return Problem("bad-label", "a label file has a wrong annotation: " + (evidence or "").strip(),
                   fix="class ids must be 0..classes-1 and x y w h in 0..1 (run `%yolo check`); AlexeyAB lists "
                       "the files in bad_label.list", file=file, evidence=evidence)


def truncated_weights(evidence: Optional[str] = None) -> Problem:
    """hank-ai read fewer fields than the cfg needs."""
    return Problem("truncated-weights", "the .weights file is shorter than the cfg needs: it is truncated (an "
                   "interrupted copy or download) or belongs to another cfg",
                   fix="use a complete weights file that matches this cfg", evidence=evidence)


def truncated_weights_file(path: Optional[str], evidence: Optional[str] = None) -> Problem:
    """AlexeyAB's ``Unexpected end of wights-file!``: it goes on with what it read."""
    return Problem("truncated-weights", f"{path or 'the weights file'} ended before all layers were read: it is "
                   "truncated or not a weights file; the layers it lacks start from random weights",
                   fix="use a complete weights file of this cfg (e.g. backup/*_last.weights), or start without "
                       "weights", severity="warning", file=path, evidence=evidence)


def truncated_weights_loaded(path: Optional[str], loaded: int, detection_layer: int) -> Optional[Problem]:
    """AlexeyAB loaded fewer layers than the network has: a truncated file, unless it is a partial `.conv.N` one
    (or the path is unknown: a log without its ``Loading weights from`` line cannot tell)."""
    if not path or re.search(r"\.conv\.\d+$", path):
        return None
    return Problem(
        "truncated-weights",
        f"only {loaded} layers were loaded from {path}, but the network has at least {detection_layer + 1}: the "
        "file is truncated (or belongs to another cfg) and training goes on with random weights",
        fix="use a complete weights file (e.g. backup/*_last.weights of the same cfg), or start without weights",
        severity="warning", file=path, evidence=f"Done! Loaded {loaded} layers from weights-file")


def no_display(evidence: Optional[str] = None) -> Problem:
    return Problem("no-display", "darknet tried to open a window, but there is no display",
                   fix="add -dont_show (AlexeyAB, hank-ai); pjreddie's `detector test` has no such flag: use "
                       "`detector valid` or a build with OPENCV=0", evidence=evidence)


def unsupported_command(command: str) -> Problem:
    return Problem("unsupported-command", f"darknet printed nothing for `{command}`: this darknet does not know the "
                   "command (pjreddie has no `detector map`)",
                   fix="use AlexeyAB's or hank-ai's darknet for `detector map`, or `detector valid`")


# --------------------------------------------------------------------------------------------- the GPU
def cuda_oom(evidence: Optional[str] = None, iteration: Optional[int] = None, layer: Optional[int] = None) -> Problem:
    """The GPU ran out of memory; at `layer` 0 (the first layer being built) nothing of the network was on it yet."""
    if layer == 0:
        return Problem("cuda-oom", "the GPU ran out of memory while darknet built the network's first layer: "
                       "its memory was already taken",
                       fix="free the GPU (another process holds it: a training run or another notebook; see "
                           "`!nvidia-smi`), or give a cfg made for detection (batch=1, subdivisions=1)",
                       iteration=iteration, evidence=evidence)
    return Problem("cuda-oom", "the GPU ran out of memory" + (f" while building layer {layer}" if layer else ""),
                   fix="raise subdivisions= in the cfg (e.g. 16 -> 32 -> 64), or lower width/height or batch",
                   iteration=iteration, evidence=evidence)


def no_kernel_image(evidence: Optional[str] = None) -> Problem:
    return Problem("no-kernel-image", "darknet was built for another GPU: no kernel image is available for this "
                   "GPU's compute capability",
                   fix="rebuild darknet with the ARCH of this GPU (`%yolo make` with ARCH=auto, or the -gencode of "
                       "its compute capability); GPUs older than the CUDA toolkit supports need an older toolkit",
                   evidence=evidence)


def cuda_driver(evidence: Optional[str] = None, *, warning: bool = False) -> Problem:
    return Problem("cuda-driver", "the NVIDIA driver is older than the CUDA runtime darknet was built with",
                   fix="update the NVIDIA driver, or build darknet with the CUDA toolkit the driver supports",
                   severity="warning" if warning else "error", evidence=evidence)


def no_gpu(evidence: Optional[str] = None, *, warning: bool = False) -> Problem:
    return Problem("no-gpu", "darknet was built for a GPU but sees no CUDA device" +
                   (": it goes on on the CPU" if warning else ""),
                   fix="in Colab: Runtime > Change runtime type > GPU; elsewhere check nvidia-smi, or build with "
                       "GPU=0", severity="warning" if warning else "error", evidence=evidence)


# Colab's fix for a GPU build on a CPU runtime (a restored build cache entry runs there as well as anywhere).
NO_GPU_FIX = ("in Colab: Runtime > Change runtime type > GPU, then run the cells again (the build cache restores "
              "darknet); elsewhere use a machine with an NVIDIA GPU and driver (nvidia-smi lists it), or build with GPU=0")


def no_gpu_here(evidence: Optional[str] = None) -> Problem:
    """A GPU build of darknet on a machine without a GPU, whatever CUDA said about it (its "driver version is
    insufficient" would send the user to update a driver that is not there)."""
    return Problem("no-gpu", "this machine has no GPU (nvidia-smi finds none), and darknet was built for one (GPU=1)",
                   fix=NO_GPU_FIX, evidence=evidence)


# What a GPU build prints, or fails with, where there is no GPU: the problems `no_gpu_here` replaces.
GPU_CODES = frozenset({"cuda-driver", "no-gpu", "cuda-error", "cudnn-error", "no-kernel-image"})


def cudnn_error(evidence: Optional[str] = None) -> Problem:
    last = (evidence or "").strip().splitlines()[-1:] or [""]
    return Problem("cudnn-error", "a cuDNN call failed: " + last[0],
                   fix="check that the cuDNN version matches the CUDA toolkit darknet was built with (a cuDNN "
                       "older than the GPU, or a broken cuDNN release), or rebuild with CUDNN=0", evidence=evidence)


def cuda_error(evidence: Optional[str] = None, iteration: Optional[int] = None) -> Problem:
    last = (evidence or "").strip().splitlines()[-1:] or [""]
    return Problem("cuda-error", "a CUDA call failed: " + last[0],
                   fix="check the NVIDIA driver and CUDA toolkit, then rebuild darknet", iteration=iteration,
                   evidence=evidence)


def missing_library(library: str, evidence: Optional[str] = None) -> Problem:
    """The binary cannot load a shared library (`opencv-missing` for OpenCV's, `no-gpu` for the driver's libcuda)."""
    if library.startswith("libcuda.so"):
        # NVIDIA's driver installs libcuda.so.1: without it a GPU build of darknet cannot even start.
        return Problem("no-gpu", f"darknet was built for a GPU and cannot load the NVIDIA driver's {library}: this "
                       "machine has no NVIDIA driver (no GPU)", fix=NO_GPU_FIX, file=library, evidence=evidence)
    if library.startswith("libopencv"):
        return Problem("opencv-missing", f"darknet cannot load OpenCV ({library}): it was built with OpenCV, "
                       "which is not installed (or not on the library path) on this machine",
                       fix="install it (Debian/Colab: apt-get install libopencv-dev), run `sudo ldconfig`, or add "
                           "its folder to LD_LIBRARY_PATH; or rebuild darknet with OPENCV=0", file=library,
                       evidence=evidence)
    return Problem("missing-library", f"darknet cannot load the shared library {library}",
                   fix="install the library darknet was built against (CUDA/cuDNN: the same versions as at build "
                       "time), run `sudo ldconfig` or add its folder to LD_LIBRARY_PATH; or rebuild darknet here",
                   file=library, evidence=evidence)


# --------------------------------------------------------------------------------------------- training
def nan_loss(iteration: int, evidence: str = "", severity: str = "error") -> Problem:
    """The `nan-loss` problem for the first iteration whose loss went nan (or inf)."""
    return Problem(
        "nan-loss", f"training diverged: the loss is nan from iteration {iteration} on",
        fix="lower learning_rate (e.g. divide it by 10) or raise burn_in, and check the labels "
            "(class ids < classes, coordinates in 0..1, no empty or malformed lines)",
        severity=severity, iteration=iteration, evidence=evidence or None)  # type: ignore[arg-type]


def already_trained(weights: str, *, at: Optional[int] = None, max_batches: Optional[int] = None) -> Problem:
    """darknet trained nothing: `weights` is at or past max_batches (`at`: the iteration its header records)."""
    where = f" (its header says iteration {at:,})" if at is not None else ""
    limit = f"max_batches={max_batches}" if max_batches else "max_batches"
    return Problem("already-trained", f"darknet trained nothing: {weights}{where} is already trained to {limit} "
                   "(its seen-count), or it is truncated",
                   fix="raise max_batches (`%yolo resume max_batches=N`), or add `clear` (-clear) to train these "
                       "weights again from iteration 0", severity="warning", file=weights)


# --------------------------------------------------------------------------------------------- how it ended
def crash_on_exit(evidence: Optional[str] = None, *, heap: bool = True) -> Problem:
    what = ("a glibc heap error after the final weights were saved" if heap
            else "SIGABRT after the final weights were saved")
    return Problem("crash-on-exit", f"finished, darknet crashed on exit ({what}); the results are complete",
                   fix="nothing to do: the weights and the log are complete", severity="warning", evidence=evidence)


def heap_error(evidence: str, iteration: Optional[int] = None) -> Problem:
    return Problem("fatal-error", "darknet crashed with a heap error: " + evidence,
                   fix="resume from the last weights; if it repeats, update darknet (and check the labels: a loss "
                       "that explodes first points at them)", iteration=iteration, evidence=evidence)


def segfault(evidence: Optional[str] = None, iteration: Optional[int] = None) -> Problem:
    return Problem("segfault", "darknet crashed (segmentation fault)",
                   fix="read the last lines of the log: a cfg this darknet does not support, a bad image path in "
                       "train.txt, or for `detector valid` a missing results/ folder; if it repeats, update darknet",
                   iteration=iteration, evidence=evidence)


def fatal_error(message: str, evidence: Optional[str] = None, iteration: Optional[int] = None) -> Problem:
    return Problem("fatal-error", "darknet stopped with a fatal error: " + message,
                   fix="read the message above; check that the files named in the command and in obj.data exist "
                       "and that the cfg is valid", iteration=iteration, evidence=evidence)


def exit_status(returncode: int, iteration: Optional[int] = None) -> Problem:
    return Problem("fatal-error", f"darknet exited with status {returncode}", fix="read the last lines of the log",
                   iteration=iteration)


def illegal_instruction(evidence: Optional[str] = None, iteration: Optional[int] = None) -> Problem:
    return Problem("illegal-instruction", "darknet was killed by an illegal instruction (SIGILL): it was compiled "
                   "for a CPU with instructions this one lacks (AVX=1: hank-ai's -march=native, AlexeyAB's -mavx2)",
                   fix="build it on this machine: run the `make` line again (this version's build cache keys AVX "
                       "builds by the CPU's instruction sets), or `make AVX=0` for a binary any x86-64 CPU runs",
                   iteration=iteration, evidence=evidence)


def sigabrt(iteration: Optional[int] = None) -> Problem:
    return Problem("fatal-error", "darknet crashed (SIGABRT)", fix="read the last lines of the log",
                   iteration=iteration)


def interrupted(evidence: Optional[str] = None, iteration: Optional[int] = None) -> Problem:
    return Problem("interrupted", "darknet was interrupted (Ctrl-C / SIGINT)",
                   fix="resume from backup/*_last.weights with `%yolo resume`", severity="warning",
                   iteration=iteration, evidence=evidence)


def unwritable(reason: str, path: Optional[str] = None) -> Problem:
    """A file of the run (its log, history, run.json, weights) could not be written: a full disk or a read-only
    folder. `reason` is the system's message."""
    if "no such file or directory" in reason.lower():  # ENOENT on a write: the folder itself is gone
        return Problem("run-folder-deleted", f"the run folder was deleted while darknet ran: {reason}",
                       fix="keep the run folder while it trains (Drive: do not move it to the bin); "
                           "`%yolo resume` continues from the weights saved before", file=path)
    if "space" in reason.lower() or "quota" in reason.lower():
        return Problem("disk-full", f"the disk is full: {reason}",
                       fix="free space on the drive (old runs' weights under {workspace}/runs, the cache), then "
                           "`%yolo resume`; everything written so far is kept", file=path)
    return Problem("read-only", f"the run folder cannot be written: {reason}",
                   fix="make the folder writable again (Drive: remount it with `drive`), or train into another "
                       "workspace; everything written so far is kept", file=path)


def killed(iteration: Optional[int] = None, how: str = "killed (SIGKILL)", evidence: Optional[str] = None) -> Problem:
    """darknet was ended by a signal from outside (`how` says which, e.g. "killed (SIGKILL)")."""
    return Problem("killed", f"darknet was {how}: the machine may have run out of RAM, or a timeout or watchdog "
                   "ended it", fix="lower batch/subdivisions or width/height if memory ran out; resume from "
                   "backup/*_last.weights", iteration=iteration, evidence=evidence)


def drive_sync_failing(error: str, lag: str, last: str) -> Problem:
    """The drive mirror of a run (train/guard.py) has failed for `lag`: darknet goes on on local disk."""
    return Problem("drive-sync-failing", f"the drive has not been updated for {lag} ({error}); {last}; darknet "
                   "goes on writing on local disk",
                   fix="free space on the drive, or mount it again (the drive line of the set-up cell): the next "
                       "round catches up", severity="warning")


def drive_copy_unverified(name: str, why: str) -> Problem:
    """A file the drive's sync.json verified reads back different on a new VM (an upload that never finished)."""
    return Problem("drive-copy-unverified", f"{name} on the drive is not the copy that was verified ({why}): not "
                   "restored", fix="resume goes on from the newest checkpoint that is whole; nothing to do unless "
                                   "it was the only one", severity="warning", file=name)
