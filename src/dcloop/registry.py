"""A registry for each family of interchangeable parts (models, sources, optimizers, schedules)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from dcloop.errors import unknown_name

T = TypeVar("T", bound=Callable[..., object])


class Registry(Generic[T]):
    """Maps a name to a builder. ``@registry.register("name")`` adds one; ``registry.get`` finds it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(builder: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = builder
            return builder

        return add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise unknown_name(self.kind, name, self._entries) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
