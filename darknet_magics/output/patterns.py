"""The patterns of darknet's output: the compiled regexes the parser runs, and the keyword alternation. Pure data.

How the parser stays fast (see ``benchmarks/bench_parser.py``): no Python loop over lines. One compiled "gate"
regex (`GATE_NL`) is run with ``finditer`` over the whole buffer. It is anchored on the newline literal (the regex
engine jumps between newlines in C), matches the iteration lines of every flavor with their fields in one go
(hank-ai's usual line first through a cheaper exact pattern), and otherwise only a fixed set of keywords at the
start of a line, behind a one-character lookahead and grouped by first character, so that a line that is none of
them costs one or two comparisons. Only lines that pass the gate cost Python time; the rest of a darknet log (layer
tables, ``Region ...``/``v3 (iou loss ...`` lines) is skipped inside the regex engine. A second gate (`GATE_CR`)
does the same after a lone ``\\r``, where AlexeyAB starts its ``class_id = ..`` line after the
``rank = N of ranks = M`` progress on the same line.

Memory: escape runs in the patterns are bounded (a repeated group keeps a backtracking state per repetition), and
numbers that go to ``int()`` are at most 18 digits (a longer one is no iteration).

Line model: a "segment" is text between ``\\n`` / ``\\r`` separators, which is what a terminal shows
(`segment_end`). Events are read from the start of a segment; escapes before it (colours, AlexeyAB's
``ESC[H ESC[J`` title, hank-ai's OSC window title) are skipped by `SEG_START`.
"""
from __future__ import annotations

import re

from .diagnose import TRIGGER_PATTERNS, TRIGGERS

__all__ = ["IT_PJ_AB", "IT_HANK", "IT_HANK_FAST", "IT_HANK_PLAIN", "KEYWORDS", "KW", "KW_HANDLERS", "SEG_START",
           "GATE_NL", "GATE_CR", "G_PJAB", "G_SPEC", "G_FAST", "G_HANK", "G_HANK_PLAIN", "gate_for", "segment_end",
           "strip_escapes", "keyword_alternation"]


# ------------------------------------------------------------------------------------------------- regexes
# Colour codes (CSI ... m) inside hank-ai's lines.
_C = r"(?:\x1b\[[0-9;]*m){0,8}"
# Any escape sequence at the start of a segment: CSI (colours, cursor home, clear screen) or OSC (window title).
_ESCANY = r"(?:\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\n]*(?:\x07|\x1b\\)){0,16}"
ESC_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\n]*(?:\x07|\x1b\\)?|\x1b[@-_]?|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# pjreddie: "12: 28.0, 28.1 avg, 0.000001 rate, 1.14 seconds, 24 images"
# AlexeyAB: " 12: 24.6, 24.7 avg loss, 0.000000 rate, 1.91 seconds, 32 images, 0.11 hours left"
IT_PJ_AB = (r" ?(\d{1,18}): ([^,\s]+), ([^,\s]+) avg(?: loss)?, ([^,\s]+) rate, ([^,\s]+) seconds, (\d{1,18}) images"
             r"(?:, ([^,\s]+) hours left)?")
# hank-ai: OSC title "ESC]2;N/M: loss=.. time=..BEL" then "N: loss=X, avg loss=Y, last=.., best=.., mAP=N|DISABLED,
# rate=R, load B=T unit, train=T unit, N images, time remaining=T unit" with colour codes around the values.
# Written out field by field (no lazy ".*?"), and behind the literal ESC it starts with: every line of a hank-ai
# log runs through it, and no other line should pay for it.
IT_HANK = (r"\x1b(?:\[0m\x1b|)(?:\]2;\d+/(\d{1,18}):[^\x07\n]*\x07\x1b|)\[[0-9;]*m(\d{1,18})" + _C + r": loss=" + _C
            + r"([^\x1b,\s]+)" + _C + r", avg loss=" + _C + r"([^\x1b,\s]+)" + _C + r", last=[^,\n]*, best=[^,\n]*,"
            r" mAP=" + _C + r"(\w+)" + _C + r", rate=([^,\s]+), load [^,\n]*, train=([^,\s]+) ?([a-z]*), (\d{1,18}) images"
            r"(?:, time remaining=([^,\s]+) ?([a-z]*))?")
# The same line without colours or window title (a log with its escapes stripped, hank-ai's colours turned off, a
# paste): all the fields but max_batches, which only the title has (the parser puts None before them).
IT_HANK_PLAIN = (r"(\d{1,18}): loss=([^\x1b,\s]+), avg loss=([^\x1b,\s]+), last=[^,\n]*, best=[^,\n]*, mAP=(\w+),"
                 r" rate=([^,\s]+), load [^,\n]*, train=([^,\s]+) ?([a-z]*), (\d{1,18}) images"
                 r"(?:, time remaining=([^,\s]+) ?([a-z]*))?")
# The same line as hank-ai's own build prints it (the window title, then exactly one colour code where it puts one),
# tried first: ~40% cheaper than the general pattern above, which takes any other arrangement. Where this one
# matches, the general one matches the same text into the same fields (each of its colour slots takes the one code).
_E1 = r"\x1b\[[0-9;]*m"
_IT_HANK_FAST_T = (r"\x1b\]2;\d+/<MB>:[^\x07\n]*\x07" + _E1 + r"(\d{1,18})" + _E1 + r": loss=" + _E1 + r"([^\x1b,\s]+)" + _E1
                   + r", avg loss=" + _E1 + r"([^\x1b,\s]+)" + _E1 + r", last=[^,\n]*, best=[^,\n]*, mAP=(?:" + _E1
                   + r"|)<NM>(?:" + _E1 + r"|), rate=([^,\s]+), load [^,\n]*, train=([^,\s]+) ?([a-z]*), (\d{1,18}) images"
                   r", time remaining=([^,\s]+) ?([a-z]*)")
IT_HANK_FAST = _IT_HANK_FAST_T.replace("<MB>", r"(\d{1,18})").replace("<NM>", r"(\w+)")
# ... and the same with max_batches (constant in a run) as a literal, the value of the lines before: one capture less
# on every line, and no change to look for in it. A line with another value falls through to IT_HANK_FAST.


def _hank_spec(mb: str) -> str:
    return _IT_HANK_FAST_T.replace("<MB>", re.escape(mb)).replace("<NM>", r"(\w+)")


# The slot in the gate before any hank-ai line: never matches, and has the specialised pattern's groups (so that
# the group numbers after it are the same in every gate).
_NO_SPEC = "(?!)" + "()" * re.compile(_hank_spec("1")).groups


# Keyword segments: (group name, handler, regex). Each regex starts with a literal character so that the regex
# engine rejects a line with one character comparison per keyword; values the hot handlers need are captured
# here (named groups), and the empty `(?P<k_...>)` group at the end tells the handler (Match.lastgroup).
KEYWORDS: list[tuple[str, str, str]] = [
    ("nextmap", "nextmap", r"\(next mAP calculation at (?P<nm_at>\d{1,18}) iterations\) ?"
                           r"(?:\x1b\[H\x1b\[J\d+/(?P<nm_mb>\d{1,18}): )?"),
    # AlexeyAB repeats its last mAP every iteration ("mAP@0.5" in older versions): the value is captured so that a
    # log cut before the calculation still has it (an event only when it changes)
    ("lastacc", "lastacc", r"Last accuracy mAP@0\.50? = (?P<la_v>[^ \x1b\r\n%]*)[^\x1b\r\n]*"
                           r"(?:\x1b\[H\x1b\[J\d+/(?P<la_mb>\d{1,18}): )?"),
    ("mapline", "mapline", r"mean average precision \(mAP@0\.50\)"),
    ("mapline2", "mapline", r"mean_average_precision \(mAP@0\.50\)"),
    ("mapstart", "mapstart", r"calculation mAP"),
    ("mapstart2", "mapstart", r"Calculating mAP"),
    ("conf", "conf", r"for conf_thresh"),
    ("dets", "dets", r"detections_count"),
    ("classid", "classid", r"class_id = "),
    ("rank", "rank", r"rank ?= ?\d+ of ranks"),
    ("header", "header", r"Id Name "),
    ("saving", "saving", r"Saving weights to "),
    ("abdone", "abdone", r"If you want to train from the beginning"),
    ("maxbatch", "maxbatch", r"Training iteration has reached max batch"),
    ("prompt", "prompt", r'Type "yes" to begin training'),
    ("pjtable", "pjtable", r"layer     filters    size "),
    ("abtable", "abtable", r"layer   filters  size/strd"),
    ("hankbanner", "hankbanner", r"Darknet [Vv]\d"),
    ("loadw", "loadw", r"Loading weights from "),
    ("loadw2", "loadw", r"Done! Loaded \d+ layers"),
    ("loadw3", "loadw", r"Detection layer: ?\d+"),
    ("diag", "diag", ""),  # diagnose.TRIGGERS and TRIGGER_PATTERNS, one group each (below)
    # these start with a digit: last
    ("title", "title", r"\d+/(?P<t_mb>\d{1,18}): loss="),
    ("row", "row", r"\d+" + _C + r" +" + _C + r"\S"),
    ("hanklenient", "hanklenient", r"\d+" + _C + r": loss=" + _C + r"[^\x1b,\s]+" + _C + r", avg loss="),
    # a pjreddie/AlexeyAB iteration behind escapes, or re-spaced by a user's paste (tabs, doubled spaces)
    ("itesc", "itesc", r"\d+:[ \t]+[^,\s]+,[ \t]*[^,\s]+[ \t]+avg"),
]


def keyword_alternation() -> tuple[str, dict[str, str], str]:
    """The keyword regexes as one alternation, factored by first character, {group name: handler}, and the
    keywords' first characters (a character class's inside).

    Every line of a log is tried against the keywords, and most lines match none (layer tables, ``Region ..``,
    ``v3 (iou loss ..``, ``Loaded: ..``). Behind a one-character lookahead of all the first characters and with
    the alternatives grouped by their first character, such a line is rejected after one or two comparisons
    instead of one per keyword (~20% of the scan time of a pjreddie/AlexeyAB log). Same alternatives in the same
    order within a first character: the same matches as the plain alternation. The diagnosis triggers get one
    group each (``k_diag0``, ``k_diag1``, ..), all handled by `_on_diag`.
    """
    items: list[tuple[str, str, str]] = []  # (group name, handler, regex)
    for name, handler, rx in KEYWORDS:
        if name == "diag":
            items += [(f"diag{i}", "diag", rx) for i, rx in
                      enumerate([*map(re.escape, TRIGGERS), *TRIGGER_PATTERNS])]
        else:
            items.append((name, handler, rx))
    groups: dict[str, list[str]] = {}
    handlers: dict[str, str] = {}
    for name, handler, rx in items:
        if rx.startswith("\\d"):
            first, rest = "\\d", rx  # \d+...: the lookahead's class, the alternative keeps its \d+
        elif rx.startswith("\\"):
            first, rest = rx[:2], rx[2:]
        else:
            first, rest = rx[0], rx[1:]
        if rest[:1] in ("*", "+", "?", "{") or first in ("(", "[", ".", "|", "^", "$"):
            first, rest = "", rx  # not a plain first character: refused below
        groups.setdefault(first, []).append(f"{rest}(?P<k_{name}>)")
        handlers["k_" + name] = handler
    if "" in groups:
        raise AssertionError("every keyword must start with a plain character or \\d")
    alts = [("" if first == "\\d" else first) + (v[0] if len(v) == 1 else "(?:" + "|".join(v) + ")")
            for first, v in groups.items()]
    first_chars = "".join(f if f.startswith("\\") or f.isalnum() else "\\" + f for f in groups)
    return "(?=[" + first_chars + "])(?:" + "|".join(alts) + ")", handlers, first_chars


KW, KW_HANDLERS, _KW_FIRST = keyword_alternation()
# Where a keyword may start: after blanks, or after escape sequences (colours, AlexeyAB's ESC[H ESC[J, hank-ai's
# window title), optionally behind hank-ai's "* " / "-> ". Written without repeated groups on the path every plain
# line takes (the regex engine enters a repeated group slowly): escapes are a separate branch behind a literal ESC.
SEG_START = (r"[ \t\x07]*(?:\x1b(?:\[[0-9;?]*[A-Za-z]|\][^\x07\n]*(?:\x07|\x1b\\))" + _ESCANY + r"[ \t]*|)"
              r"(?:-> |\* |)")
# The newline gate: iteration lines (fields captured here: this is the hot path) or a keyword segment. Its
# unnamed groups, in this order: hank-ai plain (first, behind a lookahead of its first character: after the
# pjreddie/AlexeyAB pattern, which backtracks over its "loss=..", it cost hank-ai ~20% more; without the lookahead,
# this alternative made the gate ~40% slower on every log, measured on CPython 3.11), pjreddie/AlexeyAB, hank-ai
# specialised, hank-ai usual, hank-ai general; the keyword groups are all named. The group numbers of each part are
# computed from the patterns (below the gate).


# What a line that the gate takes may start with: a blank, a bell or an escape (SEG_START; pjreddie/AlexeyAB's
# " N:"; hank-ai's colours), hank-ai's "-> " / "* ", a digit (iterations), a keyword's first character. Checked
# first: most lines of a log ("v3 (iou loss ..", "Loaded: ..") are then rejected by one comparison, not one per
# alternative (~12% of the gate's time).
_LINE_FIRST = r"(?=[ \t\x07\x1b\-*\d" + _KW_FIRST + "])"


def _gate_nl(spec: str) -> re.Pattern:
    return re.compile(r"\n" + _LINE_FIRST + r"(?:(?=\d)" + IT_HANK_PLAIN + "|" + IT_PJ_AB + "|" + spec + "|"
                      + IT_HANK_FAST + "|" + IT_HANK + "|" + SEG_START + "(?:" + KW + "))")


GATE_NL = _gate_nl(_NO_SPEC)


def _span(start: int, pattern: str) -> tuple[int, ...]:
    """The gate's group numbers of `pattern`, whose first group is number `start`."""
    return tuple(range(start, start + re.compile(pattern).groups))


G_HANK_PLAIN = _span(1, IT_HANK_PLAIN)
G_PJAB = _span(G_HANK_PLAIN[-1] + 1, IT_PJ_AB)
G_SPEC = _span(G_PJAB[-1] + 1, _hank_spec("1"))
G_FAST = _span(G_SPEC[-1] + 1, IT_HANK_FAST)
G_HANK = _span(G_FAST[-1] + 1, IT_HANK)
if re.compile(_NO_SPEC).groups != len(G_SPEC) or GATE_NL.groups != G_HANK[-1] + len(GATE_NL.groupindex):
    raise AssertionError("the gate's group numbering drifted from its patterns")
_GATES: dict[str, re.Pattern] = {}  # specialised gates by max_batches text
# The lone-\r gate (progress overwritten by an event on the same line); keywords only.
GATE_CR = re.compile(r"\r(?!\n)" + SEG_START + "(?:" + KW + ")")
# The same fields with any blanks between them: a line as a user's paste re-spaced it.
RX_IT_LOOSE = re.compile(r"(\d{1,18}):\s+([^,\s]+),\s*([^,\s]+)\s+avg(?: loss)?,\s*([^,\s]+)\s+rate,\s*([^,\s]+)"
                          r"\s+seconds,\s*(\d{1,18})\s+images(?:,\s*([^,\s]+)\s+hours left)?")
# hank-ai's CPU build: 'Type "yes" to begin training, or anything else to quit:' (the whole sentence, so that a
# stray 'Type "yes"' glued to other output is not taken for it).
RX_PROMPT = re.compile(r'Type "yes" to begin training[^:\r\n\x1b\x07]*:')
HANK_LENIENT = re.compile(
    r"(\d{1,18}): loss=([^,\s]+), avg loss=([^,\s]+),.*?(?:mAP=(\w+))?.*?(?: rate=([^,\s]+))?.*?"
    r"(?: train=([^,\s]+) ?([a-z]*))?.*?(?:, (\d{1,18}) images)?(?:.*?time remaining=([^,\s]+) ?([a-z]*))?\s*$")

_NUM = r"(-?[\d.]+|[-+]?nan|[-+]?inf)"
RX_LIMIT = re.compile(r"limit of (\d{1,18})")
RX_TITLE = re.compile(r"(\d{1,18})/(\d{1,18}): loss=")
RX_MAP = re.compile(r"mean[ _]average[ _]precision \(mAP@0\.50\)\s*=\s*" + _NUM + r"\s*(%?)")
RX_PREC = re.compile(r"precision\s*=\s*" + _NUM + r",\s*recall\s*=\s*" + _NUM + r",\s*F1[- ]score\s*=\s*" + _NUM)
RX_TPFP = re.compile(r"TP\s*=\s*(\d{1,18}),\s*FP\s*=\s*(\d{1,18}),\s*FN\s*=\s*(\d{1,18}),\s*average IoU\s*=\s*" + _NUM + r"\s*(%?)")
RX_DETS = re.compile(r"detections_count\s*=\s*(\d{1,18}),\s*unique_truth_count\s*=\s*(\d{1,18})")
RX_CLASSID = re.compile(r"class_id = (\d{1,18}), name = (.*?), ap = " + _NUM + r"\s*%(?:\s*\(TP = (\d{1,18}), FP = (\d{1,18})\))?")
RX_ROW = re.compile(r"\s*(\d{1,18})\s+(.+?)\s+" + _NUM + r"\s+(\d{1,18})\s+(\d{1,18})\s+(\d{1,18})\s+(\d{1,18})\s+" + _NUM + r"\s+" + _NUM + r"\s*$")
# The file name stops at darknet's "..." (pjreddie prints "...Done!" on the same line, AlexeyAB "...Done! Loaded
# N layers from weights-file" on the same line or the next).
RX_LOADED = re.compile(r"Loading weights from (.+?)\s*(?:\.{3}.*)?$|Done! Loaded (\d{1,18}) layers|Detection layer: ?(\d{1,18})")
RX_LOADED_COUNT = re.compile(r"Loaded (\d{1,18}) layers")
LONE_CR = re.compile(r"\r(?!\n)")  # a \r that is not part of a \r\n line end
# A segment's end: the first \n, or the last \r of the first run of \r (a \r\n ends at its \r).
_SEPARATOR = re.compile(r"[\n\r]\r*")


def gate_for(max_batches_text: str) -> re.Pattern:
    """The newline gate specialised to a hank-ai run's max_batches (its window title's literal); cached."""
    gate = _GATES.get(max_batches_text)
    if gate is None:
        if len(_GATES) >= 64:
            _GATES.clear()
        gate = _GATES[max_batches_text] = _gate_nl(_hank_spec(max_batches_text))  # ~5 ms, once per max_batches
    return gate


def segment_end(buf: str, start: int, end: int) -> int:
    """End of the segment that starts before `start`: the next \\n or lone \\r (a \\r\\n ends at the \\r).

    One search that stops at the first separator, whichever it is: linear in the segment, for a plain-text log
    with no \\r at all (a search for a \\r first would run to the end of the buffer for every segment, which made
    ``tee``'d logs 2-3x slower than pty captures) as for a buffer of \\r-separated progress with no newline.
    """
    m = _SEPARATOR.search(buf, start, end)
    if m is None:
        return end
    i = m.start()
    return i if buf[i] == "\n" else m.end() - 1


def strip_escapes(text: str) -> str:
    """Remove ANSI/OSC escape sequences and control characters other than newline, ``\\r`` and tab."""
    return ESC_RE.sub("", text)
