"""`set`: give placeholders of the user's own a value for later lines."""
from __future__ import annotations

from ..language import Spec, Step
from ..session import Context, Done

SPEC = Spec("set", "darknet",
            "Give a placeholder a value for later lines: set NAME=VALUE [NAME=VALUE ...]. The names the directives "
            "set ({drive}, {workspace}, {darknet}, {bin}, {dataset}, {weights}) and {local}, {cwd}, {home} are "
            "the session's own and cannot be set.",
            open_options=True, example="set data={local}/data/helmets", order=90)


def run(step: Step, ctx: Context) -> Done:
    ctx.session.user_values.update({k: str(v) for k, v in step.options.items()})
    return Done(", ".join(f"{{{k}}} = {v}" for k, v in step.options.items()), dict(step.options))


def preview(step: Step, ctx: Context) -> list[str]:
    return [run(step, ctx).summary]
