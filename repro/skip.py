"""Skip configurations: which stages run without their skippable sub-path.

The paper writes a sub-network as one letter per residual stage, ``T`` = skip
that stage's skippable sub-path, ``F`` = keep it: ``FFFF`` is the super-net,
``TTTT`` the base-net. ``SkipConfig`` is that string as a value object; the
same form is used on the command line, in file names, DataFrame columns and
figure labels.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Sequence, Union

from repro.errors import ReproError

ALIASES = {"super": False, "base": True}


class SkipConfigError(ReproError):
    pass


@dataclass(frozen=True)
class SkipConfig:
    """One flag per stage; ``flags[i]`` is True when stage i skips its skippable blocks."""

    flags: tuple[bool, ...]

    def __post_init__(self):
        if not self.flags or not all(isinstance(f, bool) for f in self.flags):
            raise SkipConfigError(f"a skip config needs one bool per stage, got {self.flags!r}")

    @classmethod
    def parse(cls, value: SkipLike, num_stages: int, arch: str = "this network") -> SkipConfig:
        """Reads ``TTFF`` (case-insensitive), ``super``/``base``, a SkipConfig or a bool sequence.

        Anything else, or the wrong number of flags, raises SkipConfigError naming
        the architecture and its number of stages S.
        """
        expected = (
            f"{arch} has S={num_stages} skippable stages: expected {num_stages} letters of T/F "
            f"(T = skip that stage's skippable sub-path), 'super' or 'base'"
        )
        if isinstance(value, SkipConfig):
            flags = value.flags
        elif isinstance(value, str):
            text = value.strip()
            if text.lower() in ALIASES:
                return cls((ALIASES[text.lower()],) * num_stages)
            if not text or set(text.upper()) - {"T", "F"}:
                raise SkipConfigError(f"invalid skip config {value!r}: {expected}")
            flags = tuple(c == "T" for c in text.upper())
        elif isinstance(value, Sequence) and all(isinstance(f, bool) for f in value):
            flags = tuple(value)
        else:
            raise SkipConfigError(f"invalid skip config {value!r}: {expected}")
        if len(flags) != num_stages:
            raise SkipConfigError(f"invalid skip config {str(value)!r} ({len(flags)} flags): {expected}")
        return cls(flags)

    @classmethod
    def all(cls, num_stages: int) -> list[SkipConfig]:
        """All 2^S configs, super-net first, base-net last.

        Stage 1 varies slowest (``FFFF, FFFT, FFTF, ..., TTTT``), so configs that
        share a prefix of stages are neighbours: the order of a depth-first
        evaluation that reuses each stage's output.
        """
        return [cls(flags) for flags in product((False, True), repeat=num_stages)]

    @classmethod
    def super_net(cls, num_stages: int) -> SkipConfig:
        return cls((False,) * num_stages)

    @classmethod
    def base_net(cls, num_stages: int) -> SkipConfig:
        return cls((True,) * num_stages)

    @property
    def num_stages(self) -> int:
        return len(self.flags)

    @property
    def is_super_net(self) -> bool:
        return not any(self.flags)

    @property
    def is_base_net(self) -> bool:
        return all(self.flags)

    @property
    def num_skipped(self) -> int:
        return sum(self.flags)

    def __str__(self) -> str:
        return "".join("T" if f else "F" for f in self.flags)

    def __repr__(self) -> str:
        return f"SkipConfig('{self}')"


SkipLike = Union[SkipConfig, str, Sequence[bool], None]
