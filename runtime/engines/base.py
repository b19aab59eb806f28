"""One interface for every inference backend: load, input/output metadata, ``run``, close.

An ``Engine`` takes and returns float32 numpy arrays keyed by tensor name, batch first. It
checks its inputs against the bundle's metadata before the backend sees them, so a wrong
shape is one clear line instead of a backend stack trace.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..bundle import TensorSpec


class EngineError(RuntimeError):
    """A backend that cannot be used here, or inputs it cannot take: one line saying why."""


def import_backend(module: str, missing: str):
    """The backend's module, imported when an engine opens (never at the runtime's import), or one
    EngineError line, ``missing``, saying how to install it."""
    from importlib import import_module

    try:
        return import_module(module)
    except ImportError:
        raise EngineError(missing) from None


class Engine(ABC):
    """Subclasses set ``inputs``, ``outputs`` (``TensorSpec`` tuples), ``max_batch`` and
    ``description`` (backend, device, precision: what ``auto`` took), and implement ``_run``."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch: int
    description: str

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Inputs by name -> outputs by name, for one batch of 1..max_batch."""
        return self._run(self.check_inputs(feeds))

    def check_inputs(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        wanted = {t.name for t in self.inputs}
        if set(feeds) != wanted:
            raise EngineError(f"{self.description}: inputs {sorted(feeds)} given, {sorted(wanted)} expected")
        batch = None
        checked = {}
        for spec in self.inputs:
            array = np.ascontiguousarray(feeds[spec.name], dtype=np.float32)
            fixed = tuple(int(d) for d in spec.shape[1:])
            if array.ndim != len(spec.shape) or array.shape[1:] != fixed:
                raise EngineError(
                    f"{self.description}: input {spec.name!r} has shape {array.shape}, expected (batch, {fixed})"
                )
            if batch is None:
                batch = array.shape[0]
            if array.shape[0] != batch:
                raise EngineError(f"{self.description}: inputs disagree on the batch size")
            checked[spec.name] = array
        if not 1 <= batch <= self.max_batch:
            raise EngineError(f"{self.description}: batch of {batch}, this engine takes 1 to {self.max_batch}")
        return checked

    @abstractmethod
    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def close(self) -> None:
        """Release the backend's resources; safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"
