"""Name registry for models, in the style of timm: ``create_model``, ``list_models``, ``register_model``.

A model registers a builder together with a dataclass holding its default configuration.
``create_model(name, feature_spec=spec, **overrides)`` validates every override against that
dataclass, so a typo is an error that lists the valid keys instead of a silently ignored argument.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from typing import Any, Callable

_REGISTRY: dict[str, tuple[type, Callable[..., Any]]] = {}


def register_model(name: str, config_class: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``builder(feature_spec, config) -> model`` under ``name``.

    Args:
      name: the public name, e.g. ``"dssm"``.
      config_class: a dataclass whose fields are the model's hyper-parameters with defaults.
    """
    if not dataclasses.is_dataclass(config_class):
        raise TypeError(f"config_class for model {name!r} must be a dataclass, got {config_class!r}")

    def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is already registered")
        _REGISTRY[name] = (config_class, builder)
        if isinstance(builder, type):
            builder.model_name = name
        return builder

    return decorator


def list_models(pattern: str | None = None, kind: str | None = None) -> list[str]:
    """Sorted names of registered models, optionally filtered by a glob ``pattern`` and a ``kind``.

    ``kind`` is ``"retrieval"`` or ``"pre_ranking"`` (the model class's ``model_kind``).
    """
    names = sorted(_REGISTRY)
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    if kind is not None:
        names = [n for n in names if getattr(_REGISTRY[n][1], "model_kind", None) == kind]
    return names


def lookup_model(name: str) -> tuple[type, Callable[..., Any]]:
    """``(model class, builder)`` registered under ``name``; ValueError listing the registered models."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return _REGISTRY[name]


def model_config_class(name: str) -> type:
    """The config dataclass registered for model ``name``."""
    return lookup_model(name)[0]


def model_kind(name: str) -> str:
    """``"retrieval"``, ``"pre_ranking"`` or ``"baseline"``: the registered model class's ``model_kind``."""
    return getattr(lookup_model(name)[1], "model_kind", "retrieval")


def make_config(name: str, overrides: dict[str, Any] | None = None) -> Any:
    """Builds model ``name``'s config from its defaults and ``overrides``, rejecting unknown keys."""
    config_class = model_config_class(name)
    overrides = dict(overrides or {})
    valid = [f.name for f in dataclasses.fields(config_class)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown config key(s) {unknown} for model {name!r}; valid keys: {', '.join(valid)}"
        )
    config = config_class(**overrides)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def prepare_data(name: str, data: Any) -> Any:
    """The dataset model ``name`` trains on: ``data`` itself, or what the model class's ``prepare_data``
    classmethod derives from it (e.g. ``long_retriever`` adds item categories and category-tagged histories)."""
    _, builder = lookup_model(name)
    hook = getattr(builder, "prepare_data", None)
    return hook(data) if hook is not None else data


def create_model(name: str, feature_spec: Any = None, **overrides: Any) -> Any:
    """Builds the registered model ``name`` for ``feature_spec`` with config ``overrides``.

    Args:
      name: a name from ``list_models()``.
      feature_spec: a ``tower_zoo.data.FeatureSpec`` (e.g. ``tower_zoo.data.movielens_100k().feature_spec``);
        it fixes vocabulary sizes and which features feed each tower.
      **overrides: config fields, e.g. ``embedding_dim=64``.
    """
    _, builder = lookup_model(name)
    config = make_config(name, overrides)
    if feature_spec is None:
        raise ValueError(
            f"create_model({name!r}) needs feature_spec=...; get one from a dataset, e.g. "
            "tower_zoo.data.movielens_100k().feature_spec"
        )
    return builder(feature_spec, config)
