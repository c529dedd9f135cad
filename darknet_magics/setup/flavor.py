"""The darknet flavors we know, as one enum (a `str`, so run.json and older callers keep the plain words)."""
from __future__ import annotations

import enum
from typing import Optional

__all__ = ["Flavor", "flavor_of"]


class Flavor(str, enum.Enum):
    """Which darknet a binary is: it decides the argv (-dont_show, -map) and how its output reads."""

    PJREDDIE = "pjreddie"
    ALEXEYAB = "alexeyab"
    HANK_AI = "hank-ai"

    def __str__(self) -> str:
        return self.value

    @property
    def knows_dont_show(self) -> bool:
        """pjreddie's darknet reads an unknown ``-dont_show`` after the cfg as the weights file."""
        return _DONT_SHOW[self]

    @property
    def maps_while_training(self) -> bool:
        """Only AlexeyAB's and hank-ai's darknet compute mAP during training (-map)."""
        return _DONT_SHOW[self]


# Exhaustive tables: a new member without an entry fails at import, not at some user's run.
_DONT_SHOW = {Flavor.PJREDDIE: False, Flavor.ALEXEYAB: True, Flavor.HANK_AI: True}
assert set(_DONT_SHOW) == set(Flavor), "every Flavor needs an entry in _DONT_SHOW"


def flavor_of(value: object) -> Optional[Flavor]:
    """`value` as a Flavor (None for None); a word we do not know raises ValueError naming the known ones."""
    if value is None or isinstance(value, Flavor):
        return value
    try:
        return Flavor(str(value))
    except ValueError:
        raise ValueError(f"unknown darknet flavor {value!r} (known: {', '.join(f.value for f in Flavor)})") from None
