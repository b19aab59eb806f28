"""Zhao et al.'s three model families, by name: ``list_models()``, ``create_model(name, **kwargs)``."""

from . import cenet, classifier, unet  # noqa: F401  (registers the builders)
from .checkpoint import load_checkpoint, load_model, save_checkpoint
from .registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "load_checkpoint", "load_model", "register_model", "save_checkpoint"]
