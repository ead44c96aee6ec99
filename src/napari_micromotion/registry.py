"""Registries of analysis methods and tools, open to other packages.

A method or tool registers itself when its module is imported, with the
:meth:`Registry.register` class decorator::

    from napari_micromotion.methods import METHODS, Method

    @METHODS.register
    class MyMethod(Method):
        name = "mine"
        ...

The project's own modules are imported on first use of a registry; third-party
packages are found through the entry-point groups ``napari_micromotion.methods``
and ``napari_micromotion.tools`` (the entry point names a module, or the class
itself), so that installing a package is enough for its methods to appear in the
command line, the napari forms, the output folder and the score table.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import check

__all__ = ["Registry"]

log = logging.getLogger("napari_micromotion")
T = TypeVar("T")


class Registry(Generic[T]):
    """Named singletons of one kind, in registration order.

    Parameters
    ----------
    what
        What is registered ("method", "tool"), for messages.
    group
        Entry-point group searched for third-party plug-ins.
    builtins
        Modules of this package imported before the first look-up.
    """

    def __init__(self, what: str, group: str, builtins: tuple[str, ...] = ()) -> None:
        self.what = what
        self.group = group
        self.builtins = builtins
        self._items: dict[str, T] = {}
        self._loaded = False
        self._loading = False

    # ------------------------------------------------------------ registration
    def register(self, cls: type) -> type:
        """Class decorator: instantiate *cls* and register it under ``cls.name`` (after the built-in ones)."""
        self._ensure()
        name = getattr(cls, "name", None)
        check(isinstance(name, str) and name.isidentifier(),
              f"a {self.what} needs a 'name' that is a Python identifier, got {name!r}.")
        old = self._items.get(name)
        check(old is None or type(old).__qualname__ == cls.__qualname__,
              f"a {self.what} named {name!r} is already registered ({type(old).__module__}).")
        self._items[name] = cls()
        return cls

    def unregister(self, name: str) -> None:
        """Remove *name* (tests and plug-in reloads)."""
        self._items.pop(name, None)

    # ------------------------------------------------------------ loading
    def _ensure(self) -> None:
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            for module in self.builtins:
                importlib.import_module(module)
            self._load_entry_points()
            self._loaded = True
        finally:
            self._loading = False

    def _load_entry_points(self) -> None:
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plug-in must not break the program
                log.warning("napari-micromotion: %s plug-in %r could not be loaded (%s)", self.what, ep.name, exc)
                continue
            if isinstance(obj, type) and getattr(obj, "name", None) and obj.name not in self._items:
                self.register(obj)

    # ------------------------------------------------------------ look-up
    def __contains__(self, name: object) -> bool:
        self._ensure()
        return name in self._items

    def __getitem__(self, name: str) -> T:
        self._ensure()
        check(name in self._items, f"unknown {self.what} {name!r}; choose from {', '.join(self._items)}.")
        return self._items[name]

    def get(self, name: str, default: Any = None) -> T | Any:
        self._ensure()
        return self._items.get(name, default)

    def names(self) -> list[str]:
        self._ensure()
        return list(self._items)

    def __iter__(self) -> Iterator[T]:
        self._ensure()
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        self._ensure()
        return len(self._items)

    def order(self, names: Any, key: Callable[[Any], str] = str) -> list[Any]:
        """*names* (or objects named by *key*) sorted in registration order; unknown ones last."""
        self._ensure()
        pos = {n: i for i, n in enumerate(self._items)}
        return sorted(names, key=lambda x: pos.get(key(x), len(pos)))
