"""Backend registry: ``blspy`` (default, fast) and ``py_ecc`` (pure-Python reference).

A backend is chosen per call by name (``backend="py_ecc"``), else by the ``THRESH_SIG_BACKEND``
environment variable, else ``blspy``. Backends are imported lazily: importing py_ecc alone
takes ~0.5 s, which a blspy user should not pay.
"""

from __future__ import annotations

import os

from ..errors import ParameterError
from .base import Backend

__all__ = ["BACKENDS", "BACKEND_ENV", "DEFAULT_BACKEND", "Backend", "get_backend"]

BACKEND_ENV = "THRESH_SIG_BACKEND"
DEFAULT_BACKEND = "blspy"
BACKENDS = ("blspy", "py_ecc")
_ALIASES = {
    "blspy": "blspy",
    "blst": "blspy",
    "py_ecc": "py_ecc",
    "py-ecc": "py_ecc",
    "pyecc": "py_ecc",
}
_INSTANCES: dict[str, Backend] = {}


def get_backend(name: str | Backend | None = None) -> Backend:
    """Resolve a backend name (or ``None``: environment, then default) to its singleton."""
    if isinstance(name, Backend):
        return name
    if name is None:
        name = os.environ.get(BACKEND_ENV) or DEFAULT_BACKEND
    if not isinstance(name, str):
        raise TypeError(f"backend must be a str or None, not {type(name).__name__}")
    canonical = _ALIASES.get(name.strip().lower())
    if canonical is None:
        raise ParameterError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    inst = _INSTANCES.get(canonical)
    if inst is None:
        if canonical == "blspy":
            from .blspy_backend import BlspyBackend

            inst = BlspyBackend()
        else:
            from .pyecc_backend import PyEccBackend

            inst = PyEccBackend()
        _INSTANCES[canonical] = inst
    return inst
