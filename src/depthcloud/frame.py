"""Frame: one depth image in metres with the intrinsics that match it, optional colour and a stamp.

Every entrance (disparity, depth files, RealSense, OAK, replay, synthetic) converts its raw units
once and hands out Frames; everything downstream (filters, unprojection, server) takes Frames.
This module must not import sources, the server or the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from depthcloud import _validate as v
from depthcloud.camera import Intrinsics
from depthcloud.errors import InputError

__all__ = ["Frame"]


@dataclass(frozen=True, eq=False)
class Frame:
    """depth: (H, W) float32 metres, 0 = invalid. intrinsics: of the depth image (same size).
    color: (H, W, 3) uint8 RGB aligned to depth, or None. seq: frame number from the source.
    stamp: seconds on the source's clock. frame_id: the camera's name for clients."""

    depth: np.ndarray
    intrinsics: Intrinsics
    color: np.ndarray | None = None
    seq: int = 0
    stamp: float = 0.0
    frame_id: str = "camera"

    def __post_init__(self) -> None:
        d = v.image("depth", self.depth, kinds="f")
        if d.dtype != np.float32:
            d = d.astype(np.float32)
        if not isinstance(self.intrinsics, Intrinsics):
            raise InputError(f"intrinsics: expected Intrinsics, got {type(self.intrinsics).__name__}")
        if d.shape != self.intrinsics.shape:
            raise InputError(
                f"depth: its size {d.shape[1]}x{d.shape[0]} does not match the intrinsics "
                f"{self.intrinsics.width}x{self.intrinsics.height}"
            )
        object.__setattr__(self, "depth", d)
        if self.color is not None:
            object.__setattr__(self, "color", v.color_image("color", self.color, d.shape))

    @property
    def shape(self) -> tuple[int, int]:
        return self.intrinsics.shape

    def with_depth(self, depth: np.ndarray, intrinsics: Intrinsics | None = None, **changes: Any) -> Frame:
        """A new Frame with other depth (and the intrinsics that match it, if its size changed).

        Colour is dropped when the size changes unless ``color`` is given in ``changes``.
        """
        intr = intrinsics or self.intrinsics
        color = self.color if intr.shape == self.intrinsics.shape else None
        changes.setdefault("color", color)
        return replace(self, depth=depth, intrinsics=intr, **changes)
