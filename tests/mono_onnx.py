"""Tiny ONNX depth models for the mono tests, built with onnx.helper (no weights, no download).

``write_video`` writes a tiny video for the video inputs. Each model takes ``pixel_values`` float32 [N, 3, H, W] with dynamic N, H, W and returns ``predicted_depth``:
``plane_model`` a constant (a fronto-parallel plane at ``value`` metres, or a constant inverse depth)
whatever the input; ``gray_model`` ``gain`` × the mean of the three normalised channels + ``offset``,
so the output follows the image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(nodes: list, inits: list, path: Path, *, rank: int, kind: str | None, max_depth: float | None,
          input_name: str, output_name: str) -> Path:
    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 3, "H", "W"])
    oshape = ["N", "H", "W"] if rank == 3 else ["N", 1, "H", "W"]
    y = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, oshape)
    graph = helper.make_graph(nodes, "tiny_depth", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {}
    if kind is not None:
        meta["depthcloud.kind"] = kind
    if max_depth is not None:
        meta["depthcloud.max_depth"] = repr(float(max_depth))
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def gray_model(path: Path, *, gain: float = 1.0, offset: float = 3.0, rank: int = 3, kind: str | None = "metric",
               max_depth: float | None = None, input_name: str = "pixel_values",
               output_name: str = "predicted_depth") -> Path:
    inits = [numpy_helper.from_array(np.array(gain, np.float32), "gain"),
             numpy_helper.from_array(np.array(offset, np.float32), "offset")]
    nodes = [
        helper.make_node("ReduceMean", [input_name], ["mean"], axes=[1], keepdims=1 if rank == 4 else 0),
        helper.make_node("Mul", ["mean", "gain"], ["scaled"]),
        helper.make_node("Add", ["scaled", "offset"], [output_name]),
    ]
    return _save(nodes, inits, path, rank=rank, kind=kind, max_depth=max_depth, input_name=input_name,
                 output_name=output_name)


def write_video(path: Path, frames: int, width: int, height: int, *, fps: float = 10.0) -> Path:
    """A small MJPG .avi whose frame i is a uniform grey of level 40·i (cv2.VideoWriter)."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for i in range(frames):
        writer.write(np.full((height, width, 3), (40 * i) % 256, np.uint8))
    writer.release()
    return path


def plane_model(path: Path, value: float, **kw: object) -> Path:
    """A model whose output is ``value`` everywhere (gain 0)."""
    return gray_model(path, gain=0.0, offset=value, **kw)  # type: ignore[arg-type]
