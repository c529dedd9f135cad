"""The registry: one module per directive (or small family), found by looking at this package.

A directive module holds its `SPEC` (a `language.Spec`: what the line accepts, its help and example), a
``run(step, ctx) -> Done`` and a ``preview(step, ctx) -> list[str]``. Both call the module's planning code (the
domain module's ``plan_*`` function), so what a dry run prints is what the run does. Adding a directive means
adding a module here (and its page in docs/directives/); nothing else names it.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from ..language import Grammar, Spec, Step
from ..session import Context, Done

__all__ = ["Directive", "REGISTRY", "GRAMMAR", "directive_for"]


@dataclass(frozen=True)
class Directive:
    """A directive as the executor sees it: its spec and its two entry points."""

    spec: Spec
    run: Callable[[Step, Context], Done]
    preview: Callable[[Step, Context], list[str]]
    module: str


def _load(module: ModuleType) -> Directive:
    missing = [name for name in ("SPEC", "run", "preview") if not hasattr(module, name)]
    if missing:
        raise ImportError(f"directive module {module.__name__} lacks {', '.join(missing)}")
    return Directive(spec=module.SPEC, run=module.run, preview=module.preview, module=module.__name__)


def _discover() -> dict[tuple[str, str], Directive]:
    found: dict[tuple[str, str], Directive] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        d = _load(importlib.import_module(f"{__name__}.{info.name}"))
        key = (d.spec.language, d.spec.name)
        if key in found:
            raise ImportError(f"{key} is declared by both {found[key].module} and {d.module}")
        found[key] = d
    return dict(sorted(found.items(), key=lambda kv: (kv[1].spec.order, kv[0][1])))


REGISTRY: dict[tuple[str, str], Directive] = _discover()
GRAMMAR = Grammar(darknet={n: d.spec for (lang, n), d in REGISTRY.items() if lang == "darknet"},
                  yolo={n: d.spec for (lang, n), d in REGISTRY.items() if lang == "yolo"})


def directive_for(step: Step) -> Directive:
    """The directive that handles `step` (every parsed step has one: the grammar is made from the registry)."""
    return REGISTRY[(step.language, step.name)]
