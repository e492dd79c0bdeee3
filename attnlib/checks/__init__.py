"""Exercise checkers: ``attnlib.checks.check_*(your_function)`` prints ✓ or a diagnosis.

Every checker takes the reader's function (or tensor), runs it on several seeded cases including
edge cases, compares with attnlib's reference, prints one line - ``✓ name: all N cases passed`` or
``✗ name: <what is wrong and the likely cause>`` - and returns True or False. A checker never
raises because of the reader's code: a stub that raises ``NotImplementedError`` reads "not
implemented yet", and any other exception is shown with a hint.

How the package is assembled (so adding checkers needs no edit here): on import, every module of
this package whose name does not start with ``_`` is imported and the names in its ``__all__`` are
re-exported here. To add checkers, create ``attnlib/checks/<topic>.py`` with an ``__all__`` listing
its public checkers, and build them on the helpers in ``attnlib/checks/_core.py``. A module without
``__all__``, or two modules exporting the same name, is an error reported at import time.
"""

from __future__ import annotations

import importlib
import pkgutil

__all__: list[str] = []


def _collect() -> None:
    origin: dict[str, str] = {}  # exported name -> module that provides it
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        names = getattr(module, "__all__", None)
        if names is None:
            raise ImportError(f"attnlib.checks.{info.name} must define __all__ (the checkers it exports)")
        for name in names:
            if name in origin:
                raise ImportError(
                    f"attnlib.checks: {name!r} is exported by both {origin[name]} and {info.name}"
                )
            origin[name] = info.name
            globals()[name] = getattr(module, name)
            __all__.append(name)


_collect()
