"""One small registry class, used for every kind of named thing.

Architectures, data sets, training methods, presets and paper artifacts are each
looked up by name in their own ``Registry``; the CLI takes its choices from them.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from repro.errors import ReproError

T = TypeVar("T")


class UnknownNameError(ReproError):
    pass


class Registry(Generic[T]):
    """Maps names to entries of one kind, in registration order."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def register(self, name: str, make_entry: Callable[[Callable], T] | None = None):
        """Decorator: registers ``make_entry(fn)`` (or ``fn`` itself) under ``name``."""

        def decorate(fn):
            self.add(name, make_entry(fn) if make_entry else fn)
            return fn

        return decorate

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; choose from: {', '.join(self._entries)}"
            ) from None

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)
