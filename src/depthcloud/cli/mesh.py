"""The ``mesh`` command: a depth image, a disparity map or a cloud → one triangle mesh file.

``grid`` joins neighbouring pixels of a depth (or disparity) image and cuts at depth jumps;
``poisson`` fits a surface to any cloud (Open3D). Inputs, options and outputs are all checked before
the work starts; an empty mesh is an error, not an empty file.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from depthcloud.cli._common import check_input, check_output, console, err_console
from depthcloud.errors import InputError

METHODS = ("grid", "poisson")
# Depth a person would call implausible for a depth camera: probably the wrong --depth-scale.
_IMPLAUSIBLE_MEDIAN_M = 100.0


def parse_max_edge(text: str | None, *, disparity: bool) -> tuple[float, float | None]:
    """(max_edge_rel, max_edge_disp_px) from ``--max-edge``: a fraction of the depth (``0.05``) or a
    step in disparity pixels (``2px``). The default is 0.05 for depth and 2px for disparity input."""
    from depthcloud.surface.gridmesh import DEFAULT_MAX_EDGE_DISP_PX, DEFAULT_MAX_EDGE_REL

    if text is None:
        return (0.0, DEFAULT_MAX_EDGE_DISP_PX) if disparity else (DEFAULT_MAX_EDGE_REL, None)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(px)?\s*", text)
    if m is None or (m.group(2) is None and float(m.group(1)) > 10):
        raise InputError(f"--max-edge: expected a fraction of the depth like 0.05, or disparity pixels like 2px, "
                         f"got {text!r}")
    value = float(m.group(1))
    return (0.0, value) if m.group(2) else (value, None)


def _read_depth(inp: Path, intr: Any, depth_scale: float | None) -> np.ndarray:
    from depthcloud.io.depthimage import read_depth

    depth = read_depth(check_input(inp), depth_scale=depth_scale)
    if depth.shape != intr.shape:
        raise InputError(f"its size {depth.shape[1]}x{depth.shape[0]} differs from the intrinsics "
                         f"{intr.width}x{intr.height}; pass the camera file of this image size", path=inp)
    return depth


def _grid(inp: Path, *, camera: Path | None, disparity: bool, color: Path | None, depth_scale: float | None,
          disparity_scale: float | None, max_edge: str | None, max_angle: float, min_depth: float,
          max_depth: float) -> Any:
    from depthcloud.camera import StereoRig
    from depthcloud.cli.core import CLOUD_EXTS, _read_color, read_disparity
    from depthcloud.geometry import disparity_to_depth
    from depthcloud.io.calibfiles import load_calibration
    from depthcloud.surface.datasets import load_camera
    from depthcloud.surface.gridmesh import mesh_from_depth

    if inp.suffix.lower() in CLOUD_EXTS:
        raise InputError("is a point cloud, which has no pixel grid; use --method poisson for clouds", path=inp)
    if camera is None:
        what = "a disparity map needs --camera RIG (the rectified stereo rig)" if disparity else \
            "a depth image needs --camera FILE (the intrinsics of that image)"
        raise InputError(f"{what}; it says how pixels become points", path=inp)
    rel, px = parse_max_edge(max_edge, disparity=disparity)
    rig = None
    if disparity or px is not None:
        cal = load_calibration(check_input(camera))
        rig = cal if isinstance(cal, StereoRig) else None
    if disparity:
        if rig is None or not rig.rectified:
            raise InputError("--disparity needs a rectified stereo rig (Middlebury calib.txt or a rig file from "
                             "`calibrate stereo`)", path=camera)
        intr = rig.left.undistorted()
        raw = read_disparity(inp, scale=disparity_scale)
        if raw.shape != intr.shape:
            raise InputError(f"its size {raw.shape[1]}x{raw.shape[0]} differs from the rig's {intr.width}x"
                             f"{intr.height}; pass the rig of this image size", path=inp)
        depth = disparity_to_depth(np.where(np.isfinite(raw), raw, 0), rig.focal_px, rig.baseline_m,
                                   doffs_px=rig.doffs_px)
    else:
        if px is not None and rig is None:
            raise InputError(f"--max-edge {max_edge}: a step in disparity pixels needs a stereo rig in --camera; "
                             "give a fraction of the depth like 0.05")
        intr = rig.left if rig is not None else load_camera(camera)
        depth = _read_depth(inp, intr, depth_scale)
    valid = depth[(depth > 0) & np.isfinite(depth)]
    if valid.size and float(np.median(valid)) > _IMPLAUSIBLE_MEDIAN_M:
        err_console.print(f"warning: {inp}: the median depth is {float(np.median(valid)):.0f} m; "
                          "is --depth-scale right (metres per stored unit)?")
    rgb = _read_color(color, depth.shape)
    return mesh_from_depth(depth, intr, color=rgb, max_edge_rel=rel, max_edge_disp_px=px,
                           baseline_m=None if rig is None or px is None else rig.baseline_m,
                           max_angle_deg=max_angle, min_depth_m=min_depth, max_depth_m=max_depth)


def _poisson(inp: Path, *, camera: Path | None, color: Path | None, depth_scale: float | None, min_depth: float,
             max_depth: float, poisson_depth: int, trim: float) -> Any:
    from depthcloud.cli.core import CLOUD_EXTS, _read_color
    from depthcloud.io import read_cloud
    from depthcloud.surface.poisson import poisson_mesh

    if inp.suffix.lower() in CLOUD_EXTS:
        cloud = read_cloud(check_input(inp)).within_range(min_depth, max_depth)
    else:
        # A depth image: its points, with normals from the pixel grid (better than from neighbours).
        from depthcloud.surface.datasets import load_camera
        from depthcloud.surface.normals import cloud_with_normals

        if camera is None:
            raise InputError("a depth image needs --camera FILE (the intrinsics of that image); or give a cloud file",
                             path=inp)
        intr = load_camera(camera)
        depth = _read_depth(inp, intr, depth_scale)
        cloud = cloud_with_normals(depth, intr, color=_read_color(color, depth.shape), min_depth_m=min_depth,
                                   max_depth_m=max_depth)
    if len(cloud) < 3:
        raise InputError(f"has {len(cloud)} points within the depth limits; Poisson needs at least 3", path=inp)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mesh = poisson_mesh(cloud, depth=poisson_depth, density_quantile=trim)
    for w in caught:
        if "depthcloud" in Path(w.filename).parts:
            err_console.print(f"warning: {inp}: {w.message}")
        else:  # another library's warning goes out as it came
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return mesh


def register(app: typer.Typer) -> None:
    @app.command()
    def mesh(
        input: Annotated[Path, typer.Argument(help="A depth image (16-bit PNG, PFM, NPY, EXR), a disparity map "
                                                   "with --disparity, or a cloud file for --method poisson.",
                                              show_default=False)],
        output: Annotated[Path, typer.Option("-o", "--output", help="Output mesh FILE (.ply, .obj, .glb).",
                                             show_default=False)],
        method: Annotated[str, typer.Option("--method", help="grid (neighbouring pixels, cut at depth jumps) or "
                                                             "poisson (a surface fitted to the points).")] = "grid",
        camera: Annotated[Path | None, typer.Option("--camera", help="Calibration file: the camera of the depth image (any format "
                                                    "depthcloud reads), or the rectified stereo rig of a disparity map.")] = None,
        disparity: Annotated[bool, typer.Option("--disparity", help="INPUT is a disparity map (pixels) of the "
                                                "rectified left image; --camera is its rig.")] = False,
        color: Annotated[Path | None, typer.Option("--color", "-c", help="Colour image aligned to the depth.")] = None,
        depth_scale: Annotated[float | None, typer.Option("--depth-scale", help="Metres per stored unit of a 16-bit "
                                                          "depth PNG (default 0.001).")] = None,
        disparity_scale: Annotated[float | None, typer.Option("--disparity-scale", help="Disparity PNG only: stored "
                                                              "value / scale = pixels.")] = None,
        max_edge: Annotated[str | None, typer.Option("--max-edge", help="Largest depth step between joined pixels: a "
                                                     "fraction of the depth (0.05, the default) or disparity pixels "
                                                     "(2px, the default with --disparity).")] = None,
        max_angle: Annotated[float, typer.Option("--max-angle", help="Drop triangles seen more than this many degrees "
                                                 "from face-on (grid; 90 = off, 85 cuts skins on clean depth)."
                                                 )] = 90.0,
        min_depth: Annotated[float, typer.Option("--min-depth", help="Ignore depth nearer than this (metres).")] = 0.0,
        max_depth: Annotated[float, typer.Option("--max-depth", help="Ignore depth farther than this (metres).")
                             ] = float("inf"),
        poisson_depth: Annotated[int, typer.Option("--poisson-depth", help="Poisson octree depth (9 ≈ 512 cells "
                                                   "across; each step doubles the detail).")] = 9,
        trim: Annotated[float, typer.Option("--trim", help="Poisson: drop vertices whose point density is below "
                                            "this quantile (0 keeps all).")] = 0.02,
        frame: Annotated[str, typer.Option("--frame", help="Frame of the written mesh: optical, zup or opengl "
                                           "(glTF viewers want opengl).")] = "optical",
        preview: Annotated[Path | None, typer.Option("--preview", help="Write shaded renders of the mesh (front, "
                                                     "left, top) as PNG.")] = None,
        ascii_: Annotated[bool, typer.Option("--ascii", help="Write ASCII PLY instead of binary.")] = False,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace outputs that exist.")] = False,
    ) -> None:
        """Depth image, disparity map or cloud → a triangle mesh (PLY, OBJ or GLB)."""
        from depthcloud.cli._common import check_frame
        from depthcloud.surface.meshio import MESH_EXTENSIONS, write_mesh

        if method not in METHODS:
            raise InputError(f"--method: expected one of {', '.join(METHODS)}, got {method!r}")
        if output.suffix.lower() not in MESH_EXTENSIONS:
            raise InputError(f"-o {output}: expected a mesh file ending in {', '.join(MESH_EXTENSIONS)}")
        if preview is not None and preview.suffix.lower() != ".png":
            raise InputError(f"--preview {preview}: expected a .png path")
        if disparity and method != "grid":
            raise InputError("--disparity: only --method grid reads disparity maps")
        check_frame(frame)
        check_input(input)
        out = check_output(output, overwrite=overwrite)
        png = None if preview is None else check_output(preview, overwrite=overwrite)
        if method == "grid":
            result = _grid(input, camera=camera, disparity=disparity, color=color, depth_scale=depth_scale,
                           disparity_scale=disparity_scale, max_edge=max_edge, max_angle=max_angle,
                           min_depth=min_depth, max_depth=max_depth)
        else:
            result = _poisson(input, camera=camera, color=color, depth_scale=depth_scale, min_depth=min_depth,
                              max_depth=max_depth, poisson_depth=poisson_depth, trim=trim)
        if result.is_empty:
            raise InputError("no triangles: every pixel is invalid, out of --min-depth/--max-depth, or cut by "
                             "--max-edge/--max-angle; nothing written", path=input)
        if frame != "optical":
            result = result.to_frame(frame)
        write_mesh(out, result, overwrite=True, ascii=ascii_)  # existence was checked up front
        console.print(f"{out}: {len(result.vertices)} vertices, {len(result)} triangles")
        if png is not None:
            from depthcloud.surface.render import render_mesh_views
            from depthcloud.viz import save_png

            save_png(png, render_mesh_views(result, ("front", "left", "top")), overwrite=True)
            console.print(f"preview: {png}")
