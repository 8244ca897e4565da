"""The ``fuse`` command: posed RGB-D frames → one TSDF-fused, coloured mesh.

Everything is checked before the first frame is fused (frames, camera, poses, output paths), and
nothing is written when the volume stays empty.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from depthcloud.camera import Intrinsics
from depthcloud.cli._common import check_output, console, err_console, progress
from depthcloud.errors import InputError
from depthcloud.frame import Frame


def _open_frames(path: Path, camera: Intrinsics | None,
                 depth_scale: float | None) -> tuple[int, np.ndarray | None, Iterator[Frame]]:
    """How many frames, their stamps (None: match poses by order) and the frames, read one at a time."""
    from depthcloud.surface.datasets import open_rgbd, with_camera

    if not (path.is_file() and path.suffix.lower() == ".dcrec"):
        seq = open_rgbd(path, camera=camera, depth_scale=depth_scale)
        if seq.skipped:
            err_console.print(f"warning: {seq.skipped} depth image(s) had no colour image within 0.02 s and were "
                              "skipped")
        return len(seq), seq.stamps, iter(seq)
    from depthcloud.sources.replay import RecordingReader

    if depth_scale is not None:
        raise InputError("--depth-scale: a recording stores depth in metres already")
    with RecordingReader(path) as reader:
        stamps = np.array([f.stamp for f in reader], np.float64)
    if len(stamps) == 0:
        raise InputError("the recording has no whole frames", path=path)

    def frames() -> Iterator[Frame]:
        with RecordingReader(path) as reader:
            for f in reader:  # a --camera replaces the recorded intrinsics
                yield f if camera is None else with_camera(f.depth, camera, f.color, seq=f.seq, stamp=f.stamp,
                                                           where=path)

    return len(stamps), stamps, frames()


def register(app: typer.Typer) -> None:
    @app.command()
    def fuse(
        frames: Annotated[Path, typer.Argument(help="Frames: an Open3D/Redwood folder (depth/, color/), a TUM folder "
                                                    "(depth.txt, rgb.txt) or a .dcrec recording.", show_default=False)],
        poses: Annotated[Path, typer.Option("--poses", help="Camera-to-world trajectory: Redwood/Open3D .log, TUM "
                                                            "(stamp tx ty tz qx qy qz qw), 4×4 per frame (.txt/.npy).",
                                            show_default=False)],
        output: Annotated[Path, typer.Option("-o", "--output", help="Output mesh FILE (.ply, .obj, .glb).",
                                             show_default=False)],
        camera: Annotated[Path | None, typer.Option("--camera", help="Calibration file of the depth images (any "
                                                                     "format depthcloud reads); recordings carry "
                                                                     "their own.")] = None,
        voxel: Annotated[float, typer.Option("--voxel", help="Voxel size (metres).")] = 0.01,
        trunc: Annotated[float, typer.Option("--trunc", help="Truncation distance (metres), a few voxels.")] = 0.04,
        depth_scale: Annotated[float | None, typer.Option("--depth-scale", help="Metres per stored unit of 16-bit "
                                                          "depth (Redwood default 0.001, TUM 0.0002).")] = None,
        min_depth: Annotated[float, typer.Option("--min-depth", help="Ignore depth nearer than this (metres).")] = 0.0,
        max_depth: Annotated[float, typer.Option("--max-depth", help="Ignore depth farther than this (metres).")] = 3.0,
        min_weight: Annotated[int, typer.Option("--min-weight", help="Keep surface seen by at least this many "
                                                                     "frames.")] = 1,
        preview: Annotated[Path | None, typer.Option("--preview", help="Write a shaded picture of the mesh, looking "
                                                     "the way the first camera looked, as PNG.")] = None,
        ascii_: Annotated[bool, typer.Option("--ascii", help="Write ASCII PLY instead of binary.")] = False,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace outputs that exist.")] = False,
    ) -> None:
        """Fuse posed depth frames (TSDF, sparse voxel blocks) into one coloured mesh."""
        from depthcloud.surface.datasets import load_camera, read_trajectory
        from depthcloud.surface.meshio import MESH_EXTENSIONS, write_mesh
        from depthcloud.surface.tsdf import TSDFVolume

        if output.suffix.lower() not in MESH_EXTENSIONS:
            raise InputError(f"-o {output}: expected a mesh file ending in {', '.join(MESH_EXTENSIONS)}")
        if preview is not None and preview.suffix.lower() != ".png":
            raise InputError(f"--preview {preview}: expected a .png path")
        if min_weight < 1:
            raise InputError(f"--min-weight: expected 1 or more frames, got {min_weight}")
        out = check_output(output, overwrite=overwrite)
        png = None if preview is None else check_output(preview, overwrite=overwrite)
        vol = TSDFVolume(voxel_m=voxel, trunc_m=trunc, min_depth_m=min_depth, max_depth_m=max_depth)
        cam = None if camera is None else load_camera(camera)
        count, stamps, items = _open_frames(frames, cam, depth_scale)
        T = read_trajectory(poses).for_frames(count, stamps)

        # The first frame is read before the bar starts, so that a frame the camera does not fit is
        # a one-line error, not a line under a progress bar.
        items = itertools.chain([next(items)], items)
        empty = 0
        for frame, pose in progress(zip(items, T, strict=False), total=count, label="fusing"):
            empty += vol.integrate_frame(frame, pose) == 0
        if vol.block_count == 0:
            raise InputError(f"no frame has depth within ({min_depth:g}, {max_depth:g}] m, so the volume is empty; "
                             "check --depth-scale and --max-depth", path=frames)
        if empty:
            err_console.print(f"warning: {empty} of {count} frames had no depth within ({min_depth:g}, "
                              f"{max_depth:g}] m")
        mesh = vol.extract_mesh(min_weight=min_weight)
        if mesh.is_empty:
            raise InputError(f"the fused volume has no surface seen by {min_weight} or more frames; lower "
                             "--min-weight or check the poses", path=frames)
        mesh = mesh.with_vertex_normals()
        write_mesh(out, mesh, overwrite=True, ascii=ascii_)  # existence was checked up front
        console.print(f"fused {count} frames into {len(mesh)} triangles, {len(mesh.vertices)} vertices "
                      f"({vol.block_count} blocks, {vol.nbytes / 1e6:.1f} MB) → {out}")
        if png is not None:
            from depthcloud.surface.render import render_mesh
            from depthcloud.viz import save_png

            first = mesh.transform(np.linalg.inv(T[0]), frame="optical")
            save_png(png, render_mesh(first, view="front", width=800, height=600), overwrite=True)
            console.print(f"preview → {png}")
