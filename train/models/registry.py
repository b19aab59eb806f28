"""Models are looked up by name: small typed builders, registered with ``@register_model``."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    if fn.__name__ in _BUILDERS:
        raise ValueError(f"model {fn.__name__!r} is registered twice")
    _BUILDERS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_BUILDERS)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; the returned module remembers ``(name, kwargs)`` for checkpoints."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}") from None
    model = builder(**kwargs)
    model.builder = {"name": name, "kwargs": dict(kwargs)}
    return model
