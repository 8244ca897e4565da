"""Frame sources: live devices, recordings and the synthetic scene behind one spec string.

``open_source("synthetic:640x480@30")`` returns a :class:`~depthcloud.sources.base.FrameSource`.
Spec syntax: ``SCHEME[:ARG]``; the built-in schemes are imported only when used, so a missing
optional dependency (pyrealsense2, farm-ng) matters only to the source that needs it::

    synthetic[:WxH[@FPS]]        the moving synthetic scene (default 640x480@30)
    replay:PATH                  a depthcloud recording (``depthcloud record``)
    bag:FILE                     a RealSense .bag recording, no device needed
    realsense[:k=v,...]          a live RealSense (serial, width, height, fps, preset)
    amiga:CONFIG                 a farm-ng Amiga OAK camera service
    mono:INPUT[,model=FILE,...]  metric depth from a depth model on images, a video or a camera index

Other packages add schemes with :func:`register_source`.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from depthcloud.errors import ConfigError, InputError
from depthcloud.sources.base import (
    FrameSource,
    RateLimiter,
    ReconnectPolicy,
    SourceEnded,
    SourceStats,
    ThreadedSource,
)

__all__ = [
    "FrameSource",
    "RateLimiter",
    "ReconnectPolicy",
    "SourceEnded",
    "SourceStats",
    "ThreadedSource",
    "is_recording",
    "known_schemes",
    "open_source",
    "register_source",
    "source_options",
]

SourceFactory = Callable[..., FrameSource]

# scheme -> (factory or "module:function" imported on first use, syntax shown in errors)
_REGISTRY: dict[str, tuple[SourceFactory | str, str]] = {
    "synthetic": ("depthcloud.sources.synthetic:open_synthetic", "synthetic[:WxH[@FPS]]"),
    "replay": ("depthcloud.sources.replay:open_replay", "replay:PATH"),
    "bag": ("depthcloud.sources.realsense:open_bag", "bag:FILE.bag"),
    "realsense": (
        "depthcloud.sources.realsense:open_realsense",
        "realsense[:serial=…,width=…,height=…,fps=…,preset=NAME|FILE.json]",
    ),
    "amiga": ("depthcloud.amiga.source:open_amiga_source", "amiga:CONFIG"),
    "mono": (
        "depthcloud.sources.mono:open_mono",
        "mono:IMAGE|FOLDER|VIDEO|CAMERA_INDEX[,model=FILE.onnx,camera=FILE|fov=DEG|fx=…,device=cpu|cuda,fps=…,loop=1]",
    ),
}


def register_source(scheme: str, factory: SourceFactory | str, *, syntax: str | None = None) -> None:
    """Make ``open_source("SCHEME:ARG", **options)`` call ``factory(ARG, **options)``.

    factory: a callable or a ``"module:function"`` string imported on first use. Registering a scheme
    again replaces it.
    """
    if not isinstance(scheme, str) or not scheme.isidentifier():
        raise InputError(f"scheme: expected a name like 'mysource', got {scheme!r}")
    if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
        raise InputError(f"factory: expected a callable or 'module:function', got {factory!r}")
    _REGISTRY[scheme] = (factory, syntax or f"{scheme}:ARG")


def known_schemes() -> dict[str, str]:
    """Scheme → spec syntax, for help texts."""
    return {k: syn for k, (_, syn) in sorted(_REGISTRY.items())}


def _spec_help() -> str:
    return "known sources: " + ", ".join(syn for syn in known_schemes().values())


def open_source(spec: str, **options: Any) -> FrameSource:
    """The FrameSource a spec string names (see the module docstring); not started yet.

    options: passed to the scheme's factory (e.g. ``realtime=False``, ``loop=True``).
    Raises ConfigError for an unknown scheme or a malformed argument.
    """
    scheme, arg, factory = _resolve(spec)
    valid = _option_names(factory)
    unknown = sorted(set(options) - valid) if valid is not None else []
    if unknown:
        raise ConfigError(
            f"source spec {spec!r}: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"the {scheme!r} source takes {', '.join(sorted(valid or ())) or 'no options'}"
        )
    return factory(arg, **options)


def is_recording(spec: str) -> bool:
    """True for a spec that names a recording (``replay:``, ``bag:``, ``amiga:FILE.bin``, ``mono:`` over
    files rather than a camera index): it ends by itself, and a failure to read it is not worth
    retrying forever."""
    scheme, _, arg = str(spec).strip().partition(":")
    if scheme == "mono":
        return not arg.split(",")[0].strip().isdigit()
    return scheme in ("bag", "replay") or (scheme == "amiga" and arg.lower().endswith(".bin"))


def source_options(spec: str) -> set[str] | None:
    """The keyword options the source a spec names accepts (None when its factory does not say);
    e.g. the server asks whether a recording can ``loop``."""
    return _option_names(_resolve(spec)[2])


def _resolve(spec: str) -> tuple[str, str, SourceFactory]:
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"source spec: expected 'SCHEME[:ARG]', got {spec!r}; {_spec_help()}")
    scheme, _, arg = spec.strip().partition(":")
    entry = _REGISTRY.get(scheme)
    if entry is None:
        raise ConfigError(f"source spec {spec!r}: unknown scheme {scheme!r}; {_spec_help()}")
    factory, syntax = entry
    if isinstance(factory, str):
        module_name, _, func = factory.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                raise ConfigError(f"source spec {spec!r}: the {scheme!r} source is not available ({exc})") from exc
            raise
        factory = getattr(module, func)
        _REGISTRY[scheme] = (factory, syntax)
    return scheme, arg, factory


def _option_names(factory: SourceFactory) -> set[str] | None:
    """The keyword options a factory accepts: its own keyword parameters and, when it passes
    ``**options`` on to the class it returns (its return annotation), that class's. None when
    they cannot be known (an untyped ``**options`` factory from a plugin)."""
    try:
        sig = inspect.signature(factory, eval_str=True)
    except (TypeError, ValueError, NameError):
        return None
    params = list(sig.parameters.values())[1:]  # the first is the spec's ARG
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        return names
    target = sig.return_annotation
    if target is sig.empty or not inspect.isclass(target):
        return None
    try:
        init = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in init.parameters.values()):
        return None
    fields = list(init.parameters.values())
    if fields and fields[0].kind is fields[0].POSITIONAL_OR_KEYWORD and fields[0].default is fields[0].empty:
        fields = fields[1:]  # what the factory makes of ARG (the path, the target)
    return names | {p.name for p in fields if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
