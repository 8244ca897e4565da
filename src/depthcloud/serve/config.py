"""The server's configuration: one frozen dataclass, read once from four layers.

Precedence: command-line flags > environment (``DEPTHCLOUD_<KEY>``, e.g. ``DEPTHCLOUD_PORT``) >
config file (YAML or TOML; keys as below, at the top level or under a ``serve`` table) > defaults.
A bad value raises :class:`~depthcloud.errors.ConfigError` naming the key, the value and where it
came from. This module must not start anything.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depthcloud.errors import ConfigError

__all__ = ["ServeConfig", "load_config"]

FRAMES = ("optical", "zup", "opengl")


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``depthcloud serve`` needs.

    source: a source spec (``synthetic:848x480@30``, ``bag:FILE``, ``realsense``, …).
    decimation: the default decimation magnitude 1..8 (compatible-mode clients choose their own).
    min_depth_m / max_depth_m: depth range kept, metres. voxel_m: voxel size (0 = none), metres.
    frame: the named frame clouds are served in. token: required bearer token (None = open).
    max_clients: websocket connections at once. max_message_mb: the largest message sent or
    accepted by the client side, MiB. source_timeout_s: no frame for this long = the source failed.
    insecure: allow what would expose the clouds to anyone: an empty ``token`` (it turns
    authentication off) and a non-loopback ``host`` without a token; both are refused otherwise.
    """

    source: str = "realsense"
    host: str = "127.0.0.1"
    port: int = 8787
    decimation: int = 2
    temporal: bool = False
    spatial: bool = False
    min_depth_m: float = 0.0
    max_depth_m: float = math.inf
    voxel_m: float = 0.0
    frame: str = "optical"
    token: str | None = None
    max_clients: int = 64
    max_message_mb: float = 256.0
    source_timeout_s: float = 5.0
    insecure: bool = False

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _CONVERT[f.name](getattr(self, f.name), f.name))
        if self.token == "":
            if not self.insecure:
                raise ConfigError("an empty token would turn authentication off; give a token, or --insecure "
                                  "to serve without one", key="token")
            object.__setattr__(self, "token", None)
        if self.min_depth_m > self.max_depth_m:
            raise ConfigError(f"min_depth_m {self.min_depth_m} exceeds max_depth_m {self.max_depth_m}",
                              key="min_depth_m")

    def cloud_options(self) -> Any:
        """The shared frame → cloud chain (depthcloud.pipeline) as this server runs it; ``decimation``
        is the default magnitude (clients may ask for others). Returns a CloudOptions."""
        from depthcloud.pipeline import CloudOptions

        return CloudOptions(decimation=self.decimation, temporal=self.temporal, spatial=self.spatial,
                            min_depth_m=self.min_depth_m, max_depth_m=self.max_depth_m, voxel_m=self.voxel_m,
                            frame=self.frame)


def _fail(key: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"expected {expected}, got {value!r}", key=key)


def _int(low: int, high: int) -> Callable[[Any, str], int]:
    def conv(value: Any, key: str) -> int:
        if isinstance(value, bool):
            raise _fail(key, f"an integer {low}..{high}", value)
        try:
            x = int(str(value).strip()) if isinstance(value, str) else value
        except ValueError as exc:
            raise _fail(key, f"an integer {low}..{high}", value) from exc
        if not isinstance(x, int) or not low <= x <= high:
            raise _fail(key, f"an integer {low}..{high}", value)
        return x
    return conv


def _float(low: float, high: float, *, allow_inf: bool = False, low_open: bool = False) -> Callable[[Any, str], float]:
    want = f"a number {'>' if low_open else '>='} {low:g}" + ("" if math.isinf(high) else f" and <= {high:g}")

    def conv(value: Any, key: str) -> float:
        if isinstance(value, bool):
            raise _fail(key, want, value)
        try:
            x = float(value)
        except (TypeError, ValueError) as exc:
            raise _fail(key, want, value) from exc
        bad = math.isnan(x) or (math.isinf(x) and not allow_inf) or x < low or x > high or (low_open and x == low)
        if bad:
            raise _fail(key, want, value)
        return x
    return conv


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise _fail(key, "true or false", value)


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(key, "a non-empty string", value)
    return value.strip()


def _token(value: Any, key: str) -> str | None:
    # "" stays "": an explicit empty token is refused unless insecure (see ServeConfig).
    if value is None or (isinstance(value, str) and not value.strip()):
        return None if value is None else ""
    return _text(value, key)


def _frame(value: Any, key: str) -> str:
    if value not in FRAMES:
        raise _fail(key, f"one of {', '.join(FRAMES)}", value)
    return str(value)


_CONVERT: dict[str, Callable[[Any, str], Any]] = {
    "source": _text,
    "host": _text,
    "port": _int(0, 65535),
    "decimation": _int(1, 8),
    "temporal": _bool,
    "spatial": _bool,
    "min_depth_m": _float(0.0, math.inf),
    "max_depth_m": _float(0.0, math.inf, allow_inf=True, low_open=True),
    "voxel_m": _float(0.0, math.inf),
    "frame": _frame,
    "token": _token,
    "max_clients": _int(1, 100_000),
    "max_message_mb": _float(0.0, 4096.0, low_open=True),
    "source_timeout_s": _float(0.0, 3600.0, low_open=True),
    "insecure": _bool,
}
KEYS = tuple(f.name for f in dataclasses.fields(ServeConfig))


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the config file ({exc.strerror or exc})", path=path) from exc
    if path.suffix.lower() == ".toml":
        import tomllib

        try:
            doc: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML ({exc})", path=path) from exc
    else:
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = None if mark is None else mark.line + 1
            raise ConfigError(f"not valid YAML ({getattr(exc, 'problem', exc)})", path=path, line=line) from exc
    if doc is None:
        return {}
    if isinstance(doc, dict) and isinstance(doc.get("serve"), dict):
        doc = doc["serve"]
    if not isinstance(doc, dict):
        raise ConfigError(f"expected a mapping of keys, got {type(doc).__name__}", path=path)
    for key in doc:
        if key not in KEYS:
            raise ConfigError(f"unknown key; known keys: {', '.join(KEYS)}", path=path, key=str(key))
    return dict(doc)


def load_config(
    flags: Mapping[str, Any] | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ServeConfig:
    """Merge the layers into a ServeConfig.

    flags: values given on the command line (None values are ignored, so unset flags fall through).
    config_file: a YAML/TOML file; when None, ``DEPTHCLOUD_CONFIG`` from the environment is used.
    environ: the environment to read (default ``os.environ``); only ``DEPTHCLOUD_<KEY>`` for the
    keys of ServeConfig are read.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    file_path = config_file if config_file is not None else env.get("DEPTHCLOUD_CONFIG")
    if file_path:
        path = Path(file_path)
        for key, value in _read_file(path).items():
            values[key], origin[key] = value, f"{path}"
    for key in KEYS:
        name = f"DEPTHCLOUD_{key.upper()}"
        if name in env:
            values[key], origin[key] = env[name], f"environment {name}"
    for key, value in (flags or {}).items():
        if key not in KEYS:
            raise ConfigError("unknown key", key=key)
        if value is not None:
            values[key], origin[key] = value, "command line"
    try:
        return ServeConfig(**values)
    except ConfigError as exc:
        where = origin.get(exc.key or "")
        if where is None:
            raise
        raise ConfigError(f"{exc.message} (from {where})", key=exc.key) from exc
