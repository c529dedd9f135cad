"""The directive language: `%%darknet` cell text and `%yolo` lines -> validated `Step`s. Pure.

A line is ``NAME ARG... KEY=VALUE... [FLAG...] [as VAR]`` with shell-like quoting (``"My Drive"``), ``#``
comments and ``{name}`` placeholders. Parsing checks everything it can before anything runs: unknown
directives (with the nearest known one), missing or extra arguments, unknown options (with the valid ones),
values of the wrong type, unterminated quotes (with the column), placeholders nobody sets. Placeholders are
*resolved* later, by the executor, because ``{drive}`` only has a value once the ``drive`` line has run.

Jupysql's lesson (see STYLE.md): keep the syntax small. Everything is a word, a ``key=value`` or a flag.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Container, Iterable, Mapping, Optional, Sequence

from .errors import DirectiveError

# ---------------------------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Pos:
    """A positional argument."""

    name: str
    help: str
    required: bool = True


@dataclass(frozen=True)
class Opt:
    """A ``key=value`` option. `kind` picks the converter (see `_convert`)."""

    name: str
    kind: str
    help: str
    choices: tuple[str, ...] = ()
    default: Any = None
    required: bool = False


@dataclass(frozen=True)
class Spec:
    """What one directive or `%yolo` subcommand accepts, and the help text made from it."""

    name: str
    language: str  # "darknet" (a %%darknet line) or "yolo" (a %yolo subcommand)
    summary: str
    positionals: tuple[Pos, ...] = ()
    options: tuple[Opt, ...] = ()
    flags: tuple[tuple[str, str], ...] = ()
    allows_as: bool = False
    open_options: bool = False  # any other key=value is accepted (``%yolo cfg`` sets it in the cfg)
    establishes: tuple[str, ...] = ()  # placeholders this directive gives a value to
    example: str = ""
    notes: str = ""

    def option(self, key: str) -> Optional[Opt]:
        for opt in self.options:
            if opt.name == key:
                return opt
        for opt in self.options:  # make's GPU=1 may be written gpu=1
            if opt.name.lower() == key.lower():
                return opt
        return None

    def usage(self) -> str:
        parts = [self.name if self.language == "darknet" else f"%yolo {self.name}"]
        for p in self.positionals:
            parts.append(p.name if p.required else f"[{p.name}]")
        for o in self.options:
            value = "|".join(o.choices) if o.choices else _KIND_HINT.get(o.kind, "VALUE")
            parts.append(f"{o.name}={value}" if o.required else f"[{o.name}={value}]")
        for f, _ in self.flags:
            parts.append(f"[{f}]")
        if self.open_options:
            parts.append("[KEY=VALUE ...]")
        if self.allows_as:
            parts.append("[as NAME]")
        return " ".join(parts)

    def help(self) -> str:
        lines = [f"usage: {self.usage()}", "", self.summary]
        if self.positionals:
            lines += ["", "arguments:"]
            lines += [f"  {p.name:<14} {p.help}" + ("" if p.required else " (optional)") for p in self.positionals]
        if self.options or self.flags or self.allows_as:
            lines += ["", "options:"]
            for o in self.options:
                default = f" (default: {o.default})" if o.default is not None else ""
                required = " (required)" if o.required else ""
                lines.append(f"  {o.name + '=':<14} {o.help}{default}{required}")
            for f, h in self.flags:
                lines.append(f"  {f:<14} {h}")
            if self.allows_as:
                lines.append(f"  {'as NAME':<14} bind the result to this Python variable")
        if self.establishes:
            lines += ["", "sets placeholders: " + ", ".join("{" + e + "}" for e in self.establishes)]
        if self.notes:
            lines += ["", self.notes]
        if self.example:
            lines += ["", "example:", "  " + self.example]
        return "\n".join(lines)


_KIND_HINT = {"int": "N", "float": "X", "bool01": "0|1", "onoff": "on|off", "path": "PATH", "str": "VALUE",
              "arch": "auto|75,86", "ints": "0,1", "names": "FILE|a,b,c"}

_FLAG01 = "bool01"
_MAKE_FLAGS = ("GPU", "CUDNN", "CUDNN_HALF", "OPENCV", "AVX", "OPENMP", "LIBSO", "DEBUG")

DARKNET_SPECS: dict[str, Spec] = {s.name: s for s in [
    Spec("runtime", "darknet", "Report GPU, driver, CUDA, cuDNN, OpenCV and compute capability; warn when there is no GPU.",
         example="runtime"),
    Spec("drive", "darknet",
         "Mount Google Drive (in Colab) or take a local folder as the drive (elsewhere). {drive} becomes its "
         "MyDrive folder, through a space-free link when the real path has spaces (darknet cannot read them).",
         positionals=(Pos("PATH", "Colab: the mount point (default /content/drive); elsewhere: the folder", False),),
         options=(Opt("alias", "path", "where to put the space-free link to a drive whose path has spaces"),),
         establishes=("drive", "workspace"), example="drive /content/drive"),
    Spec("workspace", "darknet", "The persistent folder for the build cache, weights, logs and runs.",
         positionals=(Pos("PATH", "the folder (default {drive}/darknet)"),), establishes=("workspace",),
         example="workspace {drive}/yolo-project"),
    Spec("cudnn", "darknet", "Install cuDNN from a tarball kept on the drive (skipped when that version is installed).",
         positionals=(Pos("TARBALL", "NVIDIA's cudnn-*.tar.xz / .tgz"),),
         options=(Opt("cuda", "path", "the CUDA tree to install into", default="/usr/local/cuda"),),
         example='cudnn "{drive}/cudnn-linux-x86_64-8.9.7.29_cuda12-archive.tar.xz"'),
    Spec("clone", "darknet", "Get darknet's source at a pinned ref (git clone, or fetch and checkout when the folder exists).",
         positionals=(Pos("URL", "repository URL or local path (default https://github.com/AlexeyAB/darknet)", False),),
         options=(Opt("ref", "str", "branch, tag or commit to check out"),
                  Opt("into", "path", "where to clone (default {local}/darknet)")),
         establishes=("darknet",), example="clone https://github.com/AlexeyAB/darknet ref=master"),
    Spec("make", "darknet",
         "Patch the Makefile's flags (or configure CMake for hank-ai/darknet) and build darknet, restoring the "
         "binary from the workspace's build cache when this exact build was made before.",
         options=tuple(Opt(f, _FLAG01, f"set {f}= in the Makefile") for f in _MAKE_FLAGS) + (
             Opt("ARCH", "arch", "GPU architectures: auto (the GPU found by runtime) or compute capabilities like 75,86"),
             Opt("jobs", "int", "parallel compile jobs (default: number of cores)"),
             Opt("cache", "onoff", "use the build cache in {workspace}/cache (default: on when a workspace is set)"),
             Opt("dir", "path", "the darknet source folder (default {darknet})")),
         establishes=("bin",), example="make GPU=1 CUDNN=1 CUDNN_HALF=1 OPENCV=1 ARCH=auto"),
    Spec("stage", "darknet",
         "Copy (or unpack) a dataset from the drive onto fast local disk; skipped when the local copy is complete.",
         positionals=(Pos("SRC", "a folder, or a .tar/.tar.gz/.tgz/.zip archive"),),
         options=(Opt("into", "path", "the local folder to put it in (default {local}/data): {dataset} = DIR/NAME"),
                  Opt("pack", "onoff", "write one archive of the folder to the drive on first use", default="off")),
         establishes=("dataset",), example="stage {drive}/datasets/helmets.zip"),
    Spec("weights", "darknet", "Fetch pretrained weights once into the workspace and reuse them on later VMs.",
         positionals=(Pos("NAME", "a known name (yolov4-tiny.conv.29, yolov4.conv.137, darknet53.conv.74, ...) or a URL"),),
         options=(Opt("into", "path", "destination folder (default {workspace}/weights)"),),
         establishes=("weights",), example="weights yolov4-tiny.conv.29"),
    Spec("set", "darknet", "Give a placeholder a value for later lines: set NAME=VALUE [NAME=VALUE ...].",
         open_options=True, example="set data={local}/data/helmets"),
]}

YOLO_SPECS: dict[str, Spec] = {s.name: s for s in [
    Spec("train", "yolo", "Train with darknet, with a live chart, dataframes and a log on the drive.",
         positionals=(Pos("DATA", "obj.data"), Pos("CFG", "the training .cfg"),
                      Pos("WEIGHTS", "pretrained or previous weights", False)),
         options=(Opt("gpus", "ints", "GPU ids, e.g. 0,1"),
                  Opt("backup", "path", "where darknet saves weights (default: obj.data's backup=)"),
                  Opt("bin", "path", "the darknet binary (default: the last make, else darknet on PATH)"),
                  Opt("stop_on_nan", "onoff", "stop darknet when the loss turns nan", default="on")),
         flags=(("map", "compute mAP during training (-map)"), ("clear", "reset the iteration counter (-clear)"),
                ("force", "start even when the pre-flight check finds errors")),
         allows_as=True, example="%yolo train {workspace}/obj.data yolo-obj.cfg {weights} map"),
    Spec("resume", "yolo", "Continue a run from its backup/*_last.weights, with the history stitched.",
         positionals=(Pos("NAME", "the run's variable (default yolo_run) or its run folder", False),),
         options=(Opt("bin", "path", "the darknet binary"),
                  Opt("max_batches", "int", "train on to this many iterations (rewrites max_batches in the cfg)")),
         allows_as=True, example="%yolo resume"),
    Spec("log", "yolo", "Parse an existing darknet log into the same run object and chart.",
         positionals=(Pos("PATH", "a darknet log file"),), allows_as=True, example="%yolo log {workspace}/runs/run1/train.log"),
    Spec("map", "yolo", "Compute mAP with darknet's `detector map` into the maps/class_ap frames.",
         positionals=(Pos("DATA", "obj.data"), Pos("CFG", ".cfg"), Pos("WEIGHTS", ".weights")),
         options=(Opt("bin", "path", "the darknet binary"),), allows_as=True,
         example="%yolo map obj.data yolo-obj.cfg backup/yolo-obj_best.weights"),
    Spec("test", "yolo", "Detect objects in one image; show the predictions image and the detections as a dataframe.",
         positionals=(Pos("DATA", "obj.data"), Pos("CFG", ".cfg"), Pos("WEIGHTS", ".weights"), Pos("IMAGE", "an image")),
         options=(Opt("thresh", "float", "confidence threshold", default=0.25), Opt("bin", "path", "the darknet binary")),
         allows_as=True, example="%yolo test obj.data yolo-obj.cfg backup/yolo-obj_best.weights dog.jpg thresh=0.3"),
    Spec("anchors", "yolo", "Compute anchors by k-means (IoU distance) on the label boxes; optionally write them into a cfg.",
         positionals=(Pos("DATA", "obj.data"),),
         options=(Opt("clusters", "int", "number of anchors", default=9), Opt("width", "int", "network width", default=416),
                  Opt("height", "int", "network height", default=416),
                  Opt("cfg", "path", "write the anchors into this cfg's [yolo] sections")),
         allows_as=True, example="%yolo anchors obj.data clusters=6 width=416 height=416 cfg=yolo-obj.cfg"),
    Spec("cfg", "yolo",
         "Make a training cfg from a stock one: classes, filters before each [yolo], max_batches, steps, and any "
         "other key=value ([net] keys, or per-head keys such as random= in every [yolo]).",
         positionals=(Pos("TEMPLATE", "yolov3, yolov3-tiny, yolov4, yolov4-tiny, or a path"), Pos("OUT", "the cfg to write")),
         options=(Opt("classes", "int", "number of classes", required=True), Opt("width", "int", "network width"),
                  Opt("height", "int", "network height"), Opt("batch", "int", "batch"),
                  Opt("subdivisions", "int", "subdivisions"),
                  Opt("max_batches", "str", "iterations, or auto (needs data=: sized from its train list)"),
                  Opt("steps", "str", "learning-rate steps, e.g. 4800,5400"), Opt("learning_rate", "float", "learning rate"),
                  Opt("data", "path", "obj.data whose train list sizes max_batches=auto")),
         open_options=True, example="%yolo cfg yolov4-tiny yolo-obj.cfg classes=2 width=416 height=416"),
    Spec("data", "yolo", "Write obj.data (and .names, train.txt/valid.txt) with paths darknet can read.",
         positionals=(Pos("OUT", "the obj.data to write"),),
         options=(Opt("classes", "int", "number of classes", required=True),
                  Opt("names", "names", "a .names file, or the names: a,b,c", required=True),
                  Opt("train", "path", "a list of training images"), Opt("valid", "path", "a list of validation images"),
                  Opt("images", "path", "a folder of images (+ labels) to split into train/valid"),
                  Opt("split", "float", "validation fraction with images=", default=0.1),
                  Opt("seed", "int", "seed of the split", default=0),
                  Opt("backup", "path", "where training saves weights (default {workspace}/backup)")),
         notes="Give either train= and valid=, or images= (and optionally split=).",
         example="%yolo data obj.data classes=2 names=helmet,head images={dataset}"),
    Spec("check", "yolo", "Check a dataset and cfg before training: files, image lists, labels, filters/classes, sizes.",
         positionals=(Pos("DATA", "obj.data"), Pos("CFG", ".cfg", False), Pos("WEIGHTS", "weights to check against the cfg", False)),
         example="%yolo check obj.data yolo-obj.cfg"),
    Spec("status", "yolo", "Report the current or last training run.", example="%yolo status"),
]}

# Placeholders that always have a value (the executor fills them): local fast disk and the working folder.
BUILTIN_PLACEHOLDERS = ("local", "cwd", "home")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


# ---------------------------------------------------------------------------------------------- plan objects


@dataclass(frozen=True)
class Step:
    """One validated line. Values are still raw text; `resolve()` fills placeholders and converts types."""

    name: str
    language: str
    lineno: int
    source: str
    args: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()
    as_name: Optional[str] = None

    @property
    def spec(self) -> Spec:
        return (DARKNET_SPECS if self.language == "darknet" else YOLO_SPECS)[self.name]

    def resolve(self, values: Mapping[str, Any]) -> "Step":
        """Fill ``{placeholders}`` from `values` and convert option values to their types."""
        def fill(text: str) -> str:
            return expand(text, values, lineno=self.lineno, directive=self.name, source=self.source)

        args = {k: fill(v) for k, v in self.args.items()}
        options: dict[str, Any] = {}
        for key, raw in self.options.items():
            value = fill(raw) if isinstance(raw, str) else raw
            opt = self.spec.option(key)
            options[key] = _convert(opt, key, value, self) if (opt and isinstance(value, str)) else value
        return replace(self, args=args, options=options)

    def get(self, key: str, default: Any = None) -> Any:
        """An option's value, else its spec default, else `default`."""
        if key in self.options:
            return self.options[key]
        opt = self.spec.option(key)
        if opt is not None and opt.default is not None:
            return _convert(opt, key, str(opt.default), self) if isinstance(opt.default, str) else opt.default
        return default


@dataclass(frozen=True)
class Plan:
    """The steps of one cell, in order."""

    steps: tuple[Step, ...]
    source: str = ""

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self):
        return iter(self.steps)


class CellError(DirectiveError):
    """Several lines of one cell are wrong: all of them are reported at once, and nothing runs."""

    def __init__(self, errors: Sequence[DirectiveError]) -> None:
        self.errors = list(errors)
        super().__init__(f"{len(self.errors)} lines have errors; nothing was run")

    def __str__(self) -> str:
        return self.message + "\n" + "\n".join(str(e) for e in self.errors)


# ---------------------------------------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class Token:
    text: str
    column: int
    key: Optional[str] = None  # set for KEY=VALUE tokens whose KEY= part was not quoted
    quoted: bool = False


def tokenize(line: str, *, lineno: int = 1) -> list[Token]:
    """Split a line like a POSIX shell would (quotes, backslashes, ``#`` comments), keeping columns.

    Only ``KEY=`` written outside quotes makes an option: ``"a=b"`` stays a plain word.
    """
    tokens: list[Token] = []
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "#":
            break
        start = i
        buf: list[str] = []
        quoted = False
        key: Optional[str] = None
        while i < n and not line[i].isspace():
            ch = line[i]
            if ch in "'\"":
                quoted = True
                close = line.find(ch, i + 1) if ch == "'" else _find_dquote(line, i + 1)
                if close < 0:
                    raise DirectiveError(f"unterminated {ch} quote starting at column {i + 1}", lineno=lineno,
                                         source=line, column=i, fix=f"close the quote with a matching {ch}")
                chunk = line[i + 1:close]
                if ch == '"':
                    chunk = re.sub(r'\\(["\\$`])', r"\1", chunk)
                buf.append(chunk)
                i = close + 1
            elif ch == "\\" and i + 1 < n:
                buf.append(line[i + 1])
                quoted = True
                i += 2
            else:
                if ch == "=" and key is None and not quoted and _IDENT.match("".join(buf)):
                    key = "".join(buf)
                    buf = []
                    i += 1
                    continue
                buf.append(ch)
                i += 1
        text = "".join(buf)
        tokens.append(Token(text=text, column=start, key=key, quoted=quoted))
    return tokens


def _find_dquote(line: str, i: int) -> int:
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        if line[i] == '"':
            return i
        i += 1
    return -1


# ---------------------------------------------------------------------------------------------- placeholders

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


def placeholders(text: str) -> list[str]:
    """The placeholder names used in `text` (``{{`` and ``}}`` are literal braces)."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(text) if m.group(1) is not None]


def expand(text: str, values: Mapping[str, Any], *, lineno: Optional[int] = None, directive: Optional[str] = None,
           source: Optional[str] = None) -> str:
    """Replace ``{name}`` with ``values[name]``; ``{{``/``}}`` give literal braces."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "{{":
            return "{"
        if m.group(0) == "}}":
            return "}"
        name = m.group(1)
        if name not in values or values[name] is None:
            raise DirectiveError(f"placeholder {{{name}}} has no value yet", lineno=lineno, directive=directive,
                                 source=source, fix=_placeholder_fix(name, values))
        return str(values[name])

    return _PLACEHOLDER.sub(sub, text)


def _placeholder_fix(name: str, known: Iterable[str]) -> str:
    setters = [s.name for s in DARKNET_SPECS.values() if name in s.establishes]
    if setters:
        return f"run a `{setters[0]}` line before this one (it sets {{{name}}}), or `set {name}=VALUE`"
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"did you mean {{{close[0]}}}? " if close else ""
    return hint + f"define it first with `set {name}=VALUE`; write {{{{ and }}}} for literal braces"


# ---------------------------------------------------------------------------------------------- conversion


def _convert(opt: Optional[Opt], key: str, value: str, step: Any) -> Any:
    """Convert an option's text to its type, or raise a DirectiveError that says what is accepted."""
    if opt is None:
        return value
    lineno = getattr(step, "lineno", None)
    name = getattr(step, "name", None)
    source = getattr(step, "source", None)

    def bad(expected: str) -> DirectiveError:
        return DirectiveError(f"{opt.name}={value!r} is not valid: expected {expected}", lineno=lineno,
                              directive=name, source=source, fix=f"write {opt.name}={_example_value(opt)}")

    kind = opt.kind
    if kind == "int":
        try:
            number = int(value)
        except ValueError:
            raise bad("a whole number") from None
        if number < 0:
            raise bad("a whole number >= 0")
        return number
    if kind == "float":
        try:
            return float(value)
        except ValueError:
            raise bad("a number") from None
    if kind == "bool01":
        if value in ("0", "1"):
            return int(value)
        raise bad("0 or 1")
    if kind == "onoff":
        low = value.lower()
        if low in ("on", "1", "yes", "true"):
            return True
        if low in ("off", "0", "no", "false"):
            return False
        raise bad("on or off")
    if kind == "ints":
        if re.fullmatch(r"\d+(,\d+)*", value):
            return value
        raise bad("comma-separated numbers such as 0,1")
    if kind == "arch":
        if value.lower() == "auto":
            return "auto"
        parts = value.split(",")
        caps = []
        for part in parts:
            part = part.strip()
            m = re.fullmatch(r"(?:sm_|compute_)?(\d)\.?(\d)", part)
            if not m:
                raise bad("auto, or compute capabilities such as 75 or 7.5,8.6")
            caps.append(int(m.group(1) + m.group(2)))
        return ",".join(str(c) for c in caps)
    if kind in ("path", "str", "names"):
        if value == "":
            raise bad("a value")
        return value
    return value


def _example_value(opt: Opt) -> str:
    return {"int": "4", "float": "0.25", "bool01": "1", "onoff": "on", "ints": "0,1", "arch": "auto",
            "path": "PATH", "names": "a,b,c"}.get(opt.kind, "VALUE")


# ---------------------------------------------------------------------------------------------- parsing


def parse_line(line: str, *, language: str, lineno: int = 1, known: Container[str] = ()) -> Optional[Step]:
    """Parse one line of `language` ("darknet" or "yolo"). Blank and comment lines give None."""
    tokens = tokenize(line, lineno=lineno)
    if not tokens:
        return None
    specs = DARKNET_SPECS if language == "darknet" else YOLO_SPECS
    head = tokens[0]
    source = line.strip()
    if head.key is not None or head.quoted or head.text not in specs:
        word = head.text if head.key is None else head.key
        if language == "darknet" and word in YOLO_SPECS:
            fix = f"`{word}` is a %yolo subcommand: write it on its own line as `%yolo {line.strip()}`"
        elif language == "yolo" and word in DARKNET_SPECS:
            fix = f"`{word}` is a %%darknet directive: put it in a %%darknet cell"
        else:
            close = difflib.get_close_matches(word, list(specs), n=1, cutoff=0.5)
            fix = (f"did you mean `{close[0]}`? " if close else "") + "known: " + ", ".join(specs)
        what = "directive" if language == "darknet" else "%yolo subcommand"
        raise DirectiveError(f"unknown {what} {word!r}", lineno=lineno, directive=word, source=source, fix=fix)
    spec = specs[head.text]

    def err(message: str, fix: str, token: Optional[Token] = None) -> DirectiveError:
        return DirectiveError(message, lineno=lineno, directive=spec.name, source=line,
                              column=token.column if token else None, fix=fix)

    rest = tokens[1:]
    as_name: Optional[str] = None
    if len(rest) >= 2 and rest[-2].text == "as" and rest[-2].key is None and not rest[-2].quoted:
        if not spec.allows_as:
            raise err("`as NAME` is not accepted here", f"remove `as {rest[-1].text}`", rest[-2])
        if not _IDENT.match(rest[-1].text) or rest[-1].key is not None:
            raise err(f"`as {rest[-1].text}`: not a valid Python variable name", "write e.g. `as run2`", rest[-1])
        as_name = rest[-1].text
        rest = rest[:-2]
    elif rest and rest[-1].text == "as" and rest[-1].key is None and spec.allows_as:
        raise err("`as` needs a variable name after it", "write e.g. `as run2`", rest[-1])

    positionals: list[Token] = []
    options: dict[str, str] = {}
    flags: set[str] = set()
    flag_names = {f for f, _ in spec.flags}
    for tok in rest:
        if tok.key is not None:
            opt = spec.option(tok.key)
            if opt is None and not spec.open_options:
                valid = [o.name for o in spec.options]
                close = difflib.get_close_matches(tok.key, valid, n=1, cutoff=0.5)
                fix = (f"did you mean {close[0]}=? " if close else "") + (
                    "valid options: " + ", ".join(v + "=" for v in valid) if valid else f"`{spec.name}` takes no options")
                raise err(f"unknown option {tok.key}=", fix, tok)
            key = opt.name if opt else tok.key
            if spec.name == "set" and not _IDENT.match(key):
                raise err(f"{key!r} is not a valid placeholder name", "use letters, digits and _", tok)
            if key in options:
                raise err(f"option {key}= given twice", f"keep one {key}=", tok)
            options[key] = tok.text
        elif not tok.quoted and tok.text in flag_names:
            flags.add(tok.text)
        else:
            positionals.append(tok)

    if len(positionals) > len(spec.positionals):
        extra = positionals[len(spec.positionals)]
        hint = ""
        if spec.flags:
            close = difflib.get_close_matches(extra.text, list(flag_names), n=1, cutoff=0.6)
            if close:
                hint = f"did you mean the flag `{close[0]}`? "
        raise err(f"unexpected argument {extra.text!r}",
                  hint + f"`{spec.name}` takes: {spec.usage()}; quote paths with spaces", extra)
    args: dict[str, str] = {}
    for pos, tok in zip(spec.positionals, positionals):
        args[pos.name] = tok.text
    for pos in spec.positionals[len(positionals):]:
        if pos.required:
            raise err(f"missing {pos.name} ({pos.help})", f"write: {spec.usage()}")
    if spec.name == "set" and not options:
        raise err("nothing to set", "write: set NAME=VALUE")
    for opt in spec.options:
        if opt.required and opt.name not in options:
            raise err(f"missing {opt.name}= ({opt.help})", f"write: {spec.usage()}")
    for tok in positionals:
        # `mapp` would silently become a weights file: a bare word close to a flag, that is not a path, is a typo
        if flag_names and not tok.quoted and "." not in tok.text and "/" not in tok.text and "{" not in tok.text:
            close = difflib.get_close_matches(tok.text, list(flag_names), n=1, cutoff=0.75)
            if close:
                raise err(f"{tok.text!r} is not a flag", f"did you mean the flag `{close[0]}`? (quote it, or write "
                          f"./{tok.text}, if it really is a file)", tok)

    step = Step(name=spec.name, language=language, lineno=lineno, source=line.strip(), args=args, options=options,
                flags=frozenset(flags), as_name=as_name)
    _check_placeholders(step, known)
    # Convert what has no placeholder now, so a bad value is caught before anything runs.
    for key, raw in options.items():
        opt = spec.option(key)
        if opt is not None and not placeholders(raw):
            _convert(opt, key, raw, step)
    _RULES.get((language, spec.name), lambda s: None)(step)
    return step


def _check_placeholders(step: Step, known: Container[str]) -> None:
    for text in list(step.args.values()) + [v for v in step.options.values() if isinstance(v, str)]:
        for name in placeholders(text):
            if name not in known and name not in BUILTIN_PLACEHOLDERS:
                raise DirectiveError(f"placeholder {{{name}}} is not set by any earlier line", lineno=step.lineno,
                                     directive=step.name, source=step.source,
                                     fix=_placeholder_fix(name, [k for k in _known_list(known)]))


def _known_list(known: Container[str]) -> list[str]:
    try:
        return list(known)  # type: ignore[call-overload]
    except TypeError:
        return []


def _rule_data(step: Step) -> None:
    opts = step.options
    has_lists = "train" in opts or "valid" in opts
    if has_lists and "images" in opts:
        raise DirectiveError("give either train=/valid= or images=, not both", lineno=step.lineno, directive="data",
                             source=step.source, fix="drop images=, or drop train= and valid=")
    if not has_lists and "images" not in opts:
        raise DirectiveError("no images: give train= and valid=, or images=DIR", lineno=step.lineno,
                             directive="data", source=step.source, fix="add images={dataset} (a folder of images and labels)")
    if has_lists and not ("train" in opts and "valid" in opts):
        need = "valid" if "train" in opts else "train"
        raise DirectiveError(f"missing {need}=", lineno=step.lineno, directive="data", source=step.source,
                             fix=f"add {need}=FILE (a list of images, one path per line)")
    if "split" in opts and "images" not in opts:
        raise DirectiveError("split= only applies with images=", lineno=step.lineno, directive="data",
                             source=step.source, fix="remove split=, or use images=DIR")
    split = opts.get("split")
    if split is not None and not placeholders(split):
        if not 0.0 <= float(split) < 1.0:
            raise DirectiveError(f"split={split} must be at least 0 and below 1", lineno=step.lineno,
                                 directive="data", source=step.source, fix="write e.g. split=0.1")


def _rule_cfg(step: Step) -> None:
    raw = step.options["classes"]
    if not placeholders(raw) and raw.isdigit() and int(raw) < 1:
        raise DirectiveError("classes= must be at least 1", lineno=step.lineno, directive="cfg",
                             source=step.source, fix="write classes=1 or more")
    if step.options.get("max_batches", "").lower() == "auto" and "data" not in step.options:
        raise DirectiveError("max_batches=auto needs the dataset's size", lineno=step.lineno, directive="cfg",
                             source=step.source, fix="add data=obj.data (its train list is counted), or give a number")


def _rule_anchors(step: Step) -> None:
    raw = step.options.get("clusters")
    if raw is not None and not placeholders(raw) and raw.isdigit() and int(raw) < 1:
        raise DirectiveError("clusters= must be at least 1", lineno=step.lineno, directive="anchors",
                             source=step.source, fix="write e.g. clusters=9 (yolov3/v4) or clusters=6 (tiny)")


_RULES: dict[tuple[str, str], Callable[[Step], None]] = {
    ("yolo", "data"): _rule_data,
    ("yolo", "cfg"): _rule_cfg,
    ("yolo", "anchors"): _rule_anchors,
}


def parse_cell(text: str, *, known: Iterable[str] = ()) -> Plan:
    """Parse a `%%darknet` cell. Lines starting with ``%yolo`` (or ``yolo``) are `%yolo` subcommands, so a
    script file for the CLI can hold both languages. Every line is checked; all errors are raised together.
    """
    names = set(known)
    steps: list[Step] = []
    errors: list[DirectiveError] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        language = "darknet"
        if line.startswith("%%darknet"):
            continue  # a CLI script may keep the cell's first line
        for prefix in ("%yolo ", "yolo "):
            if line.startswith(prefix) and line[len(prefix):].split(" ", 1)[0] in YOLO_SPECS:
                language, line = "yolo", line[len(prefix):]
                break
        try:
            step = parse_line(line, language=language, lineno=lineno, known=names)
        except DirectiveError as exc:
            errors.append(exc)
            continue
        if step is None:
            continue
        steps.append(step)
        names.update(step.spec.establishes)
        if step.name == "set":
            names.update(step.options)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise CellError(errors)
    return Plan(steps=tuple(steps), source=text)


def parse_yolo(line: str, *, known: Iterable[str] = ()) -> Optional[Step]:
    """Parse the text after ``%yolo``. Empty text gives None (the caller shows the overview help)."""
    return parse_line(line, language="yolo", lineno=1, known=set(known))


def overview(language: str) -> str:
    """A list of every directive (``"darknet"``) or subcommand (``"yolo"``) with its usage and summary."""
    specs = DARKNET_SPECS if language == "darknet" else YOLO_SPECS
    lines = []
    for spec in specs.values():
        lines.append(f"  {spec.usage()}")
        lines.append(f"      {spec.summary}")
    return "\n".join(lines)
