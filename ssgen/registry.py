"""Name -> object tables, so that everything that varies is chosen by name from the config.

A registry is filled by the package that defines its entries (importing `ssgen.methods`
registers every method). So that low layers (the config parser) can look names up without
importing the layers above them, each registry names its home modules and imports them on the
first lookup.
"""

from __future__ import annotations

import importlib
from typing import Callable, Generic, TypeVar

from ssgen.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, *homes: str):
        self.kind = kind
        self.homes = homes  # the modules whose import registers the entries
        self._entries: dict[str, T] = {}
        self._configs: dict[str, type] = {}

    def register(self, name: str, config: type | None = None) -> Callable[[T], T]:
        """Decorator. `config`: the dataclass of this entry's options, where it has its own
        (a class entry may instead carry it as its `Config` attribute)."""
        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            if config is not None:
                self._configs[name] = config
            return obj

        return add

    def _load(self) -> None:
        for home in self.homes:
            importlib.import_module(home)

    def get(self, name: str, key: str | None = None) -> T:
        if name not in self._entries:
            self._load()
        if name not in self._entries:
            where = f"{key}: " if key else ""
            raise ConfigError(
                f"{where}unknown {self.kind} {name!r}; valid: {', '.join(self.names())}"
            )
        return self._entries[name]

    def config_class(self, name: str, key: str | None = None, default: type | None = None) -> type | None:
        """The options dataclass of entry `name`: registered with it, its `Config`, or `default`."""
        entry = self.get(name, key)
        return self._configs.get(name) or getattr(entry, "Config", None) or default

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        if name not in self._entries:
            self._load()
        return name in self._entries


METHODS: Registry = Registry("method", "ssgen.methods")
TASKS: Registry = Registry("task", "ssgen.tasks")
DATASETS: Registry = Registry("dataset", "ssgen.data")
GENERATORS: Registry = Registry("generator", "ssgen.nets")
DISCRIMINATORS: Registry = Registry("discriminator", "ssgen.nets")
ENCODERS: Registry = Registry("encoder", "ssgen.nets")
DECODERS: Registry = Registry("decoder", "ssgen.nets")
OPTIMIZERS: Registry = Registry("optimizer", "ssgen.optim")
SCHEDULES: Registry = Registry("schedule", "ssgen.optim")
EXTRACTORS: Registry = Registry("feature extractor", "ssgen.eval.fid", "ssgen.eval.shapes_extractor")
