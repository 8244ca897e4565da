"""The one exception tree of depthcloud.

Every error that a user can cause is a :class:`DepthcloudError`; the CLI catches it once, prints
``Type: message`` on one line and exits non-zero. Third-party errors are translated at the boundary
with ``raise … from exc`` so the cause stays visible under ``--debug``.

::

    DepthcloudError
     ├── InputError            an argument's value, shape or dtype is wrong     (also a ValueError)
     ├── FormatError           a file's content is wrong (path, line, key)
     ├── OutputExistsError     an output path exists and overwrite was not asked for
     ├── CalibrationError      calibration cannot be done (board not found, too few views)
     ├── StereoError           a stereo pair or rig does not fit together
     ├── SourceError           a frame source failed (no device, corrupt recording, lost device)
     │    └── SourceTimeout     nothing arrived in time
     ├── ConfigError           a configuration key or value is wrong
     ├── ProtocolError         a server/client message is malformed or refused
     └── MissingDependencyError an optional extra is not installed (names the extra)

This module must not import anything from the rest of the package.
"""

from __future__ import annotations

from os import PathLike

__all__ = [
    "CalibrationError",
    "ConfigError",
    "DepthcloudError",
    "FormatError",
    "InputError",
    "MissingDependencyError",
    "OutputExistsError",
    "ProtocolError",
    "SourceError",
    "SourceTimeout",
    "StereoError",
]


class DepthcloudError(Exception):
    """Base of every error depthcloud raises on purpose.

    ``path``, ``line`` and ``key`` are optional context; when given they lead the message
    (``calib.txt: line 3: key 'cam0': …``) so that one printed line says where the problem is.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | PathLike[str] | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.key = key
        super().__init__(self._format())

    def _format(self) -> str:
        parts = []
        if self.path is not None:
            parts.append(self.path)
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.key is not None:
            parts.append(f"key {self.key!r}")
        parts.append(self.message)
        return ": ".join(parts)


class InputError(DepthcloudError, ValueError):
    """An argument's value, shape, dtype or range is wrong."""


class FormatError(DepthcloudError):
    """A file's content is not what its format requires (truncated, lying header, bad key)."""


class OutputExistsError(DepthcloudError):
    """An output path exists and overwriting was not asked for."""


class CalibrationError(DepthcloudError):
    """Calibration cannot be computed from what was given."""


class StereoError(DepthcloudError):
    """A stereo pair, rig or matcher setting does not fit together."""


class SourceError(DepthcloudError):
    """A frame source failed: no device, a corrupt recording, a lost connection."""


class SourceTimeout(SourceError):
    """A source or service did not answer within its timeout."""


class ConfigError(DepthcloudError):
    """A configuration key or value is wrong."""


class ProtocolError(DepthcloudError):
    """A server or client message is malformed, too large or refused."""


class MissingDependencyError(DepthcloudError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    @classmethod
    def for_extra(cls, module: str, extra: str) -> MissingDependencyError:
        return cls(f"{module} is not installed; install it with: pip install 'depthcloud[{extra}]'")

    @classmethod
    def for_import_failure(cls, module: str, extra: str, exc: BaseException) -> MissingDependencyError:
        """The error for a failed ``import module``: not installed, or installed but unable to load a
        system library it needs (pyrealsense2 and open3d need libusb-1.0; the message says which
        Debian package provides it)."""
        if isinstance(exc, ModuleNotFoundError) and (exc.name or module).split(".")[0] == module.split(".")[0]:
            return cls.for_extra(module, extra)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = ""
        if "libusb" in reason:
            hint = "; install the system library: apt-get install libusb-1.0-0 (Debian/Ubuntu)"
        return cls(f"{module} is installed but cannot be loaded ({reason}){hint}")
