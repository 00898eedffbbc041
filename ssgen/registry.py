"""Name -> object tables, so that everything that varies is chosen by name from the config."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from ssgen.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return add

    def get(self, name: str, key: str | None = None) -> T:
        if name not in self._entries:
            where = f"{key}: " if key else ""
            raise ConfigError(
                f"{where}unknown {self.kind} {name!r}; valid: {', '.join(sorted(self._entries))}"
            )
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries


METHODS: Registry = Registry("method")
DATASETS: Registry = Registry("dataset")
GENERATORS: Registry = Registry("generator")
DISCRIMINATORS: Registry = Registry("discriminator")
ENCODERS: Registry = Registry("encoder")
DECODERS: Registry = Registry("decoder")
EXTRACTORS: Registry = Registry("feature extractor")
