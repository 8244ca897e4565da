"""Command group ``mono``: images or videos → metric, coloured clouds through a depth model.

``depthcloud mono IMAGE|FOLDER|VIDEO… -o OUT --model FILE.onnx`` is short for ``depthcloud mono run …``;
``mono eval`` scores a model on RGB-D pairs and ``mono export`` converts Depth Anything V2 checkpoints.
A click group whose callback took the images would swallow the names ``eval`` and ``export``, so the
group instead routes anything that is not a subcommand name to ``run`` (:class:`_RunByDefault`).

Everything that can be checked is checked before the first file is written: the model, every image's
intrinsics, the alignment inputs and the output paths. Each file is written whole or not at all.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from typer.core import TyperGroup

from depthcloud.cli._common import check_input, check_output, console, err_console, progress
from depthcloud.cloud import FRAMES, PointCloud
from depthcloud.errors import FormatError, InputError, OutputExistsError

CLOUD_EXTS = (".ply", ".pcd", ".xyz", ".csv", ".txt", ".npz")
_DEPTH_EXTS = (".png", ".pfm", ".npy", ".exr", ".tif", ".tiff")


class _RunByDefault(TyperGroup):
    """``mono ARGS…`` runs ``mono run ARGS…`` unless ARGS start with a subcommand name or ask for help."""

    default_command = "run"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


mono_app = typer.Typer(
    cls=_RunByDefault, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Monocular depth: `depthcloud mono IMAGE|FOLDER|VIDEO… -o OUT --model FILE.onnx` (= `mono run`), "
         "`mono eval`, `mono export`.",
)

ModelOpt = Annotated[Path, typer.Option("--model", help="ONNX depth model (pixel_values → predicted_depth).")]
KindOpt = Annotated[str | None, typer.Option("--kind", help="metric or relative (default: the model's metadata).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, or cuda (ONNX Runtime's CUDA execution provider).")]
SizeOpt = Annotated[int, typer.Option("--input-size", help="Shorter side the network sees (518 as trained).")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace outputs that exist.")]


# -- run --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Unit:
    """One input (an image, or a whole video) and where its results go."""

    item: Any  # MonoInput
    out: Path  # the cloud (image), or the folder of frame clouds (video)
    camera: Any  # ImageCamera
    exif: Any  # ExifFocal | None
    align: Any  # ndarray | PointCloud | Frame | None
    frames: int  # 1 for an image, the stated frame count of a video


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def _side_paths(cloud_path: Path, *, save_depth: bool) -> list[Path]:
    if not save_depth:
        return []
    return [cloud_path.with_suffix(".depth.png"), cloud_path.with_suffix(".depth.pfm")]


def _read_align(path: Path, *, depth_scale: float | None) -> Any:
    suffix = path.suffix.lower()
    check_input(path)
    if suffix in CLOUD_EXTS:
        from depthcloud.io import read_cloud

        return read_cloud(path)
    if suffix == ".dcrec":
        from depthcloud.sources.replay import RecordingReader

        with RecordingReader(path) as reader:
            frame = reader.read_frame()
        if frame is None:
            raise FormatError("the recording has no frame to align to", path=path)
        return frame
    if suffix in _DEPTH_EXTS:
        from depthcloud.io.depthimage import read_depth

        return read_depth(path, depth_scale=depth_scale)
    raise InputError(f"--align: unknown kind {suffix or '(none)'!r}; expected a depth image (.png mm, .pfm, .npy), "
                     f"a cloud ({' '.join(CLOUD_EXTS)}) or a recording (.dcrec)", path=path)


def _video_size(path: Path) -> tuple[int, int, int]:
    import cv2

    from depthcloud.mono.inputs import video_frame_count

    count = video_frame_count(path)
    cap = cv2.VideoCapture(str(path))
    try:
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        cap.release()
    if w <= 0 or h <= 0:
        raise FormatError("cannot tell the video's frame size", path=path)
    return w, h, count


def _plan(inputs: list[Any], output: Path, camera_opts: Any, aligns: list[Any] | None, *, overwrite: bool,
          save_depth: bool, preview: Path | None) -> tuple[list[_Unit], list[Path | None]]:
    from depthcloud.mono.intrinsics import read_exif_focal

    single = len(inputs) == 1 and inputs[0].kind == "image" and output.suffix.lower() in CLOUD_EXTS
    if not single:
        if output.suffix.lower() in CLOUD_EXTS:
            raise InputError(f"-o {output}: several inputs or a video need a folder, not a file name")
        if output.exists() and not output.is_dir():
            raise InputError("exists and is not a folder", path=output)
        stems = [i.name for i in inputs]
        if len(set(stems)) != len(stems):
            raise InputError("several inputs share a file name; their clouds would overwrite each other")
    if preview is not None:
        if single and preview.suffix.lower() != ".png":
            raise InputError("--preview: expected a .png file for one image", path=preview)
        if not single and preview.suffix:
            raise InputError("--preview: several inputs or a video need a folder for their pictures", path=preview)
    units: list[_Unit] = []
    previews: list[Path | None] = []
    for n, item in enumerate(inputs):
        if item.kind == "image":
            (w, h), exif = read_exif_focal(item.path)
            frames = 1
            out = output if single else output / f"{item.name}.ply"
            targets = [out, *_side_paths(out, save_depth=save_depth)]
            pv = None if preview is None else (preview if single else preview / f"{item.name}.png")
        else:
            w, h, frames = _video_size(item.path)
            exif = None
            out = output / item.name
            # frame outputs are named as they come; refuse up front if any of this video's names exist
            earlier = list(output.glob(f"{item.name}_*")) if output.is_dir() else []
            if earlier and not overwrite:
                raise OutputExistsError(f"{len(earlier)} file(s) named {item.name}_* exist; pass --overwrite to "
                                        "replace them", path=output)
            targets = []
            pv = None if preview is None else preview / item.name
        try:
            camera = camera_opts.resolve(w, h, exif)
        except InputError as exc:
            raise InputError(exc.message, path=item.path) from exc
        for t in targets:
            check_output(t, overwrite=overwrite)
        if pv is not None and item.kind == "image":
            check_output(pv, overwrite=overwrite)
        units.append(_Unit(item, out, camera, exif, None if aligns is None else aligns[n], frames))
        previews.append(pv)
    return units, previews


def _frames_of(unit: _Unit) -> Iterator[tuple[Path, np.ndarray, Any]]:
    """(cloud path, rgb, camera) for each image of a unit."""
    from depthcloud.io.depthimage import read_color
    from depthcloud.mono.inputs import iter_video

    if unit.item.kind == "image":
        rgb = read_color(unit.item.path)
        camera = unit.camera
        if rgb.shape[:2] != camera.intrinsics.shape:  # a decoder that rotated by EXIF differently
            raise FormatError(f"decoded as {rgb.shape[1]}x{rgb.shape[0]}, its header says "
                              f"{camera.intrinsics.width}x{camera.intrinsics.height}", path=unit.item.path)
        yield unit.out, rgb, camera
        return
    for n, _stamp, rgb in iter_video(unit.item.path):
        yield unit.out.parent / f"{unit.item.name}_{n:06d}.ply", rgb, unit.camera


def _write_cloud(path: Path, cloud: PointCloud, comments: list[str], *, ascii_: bool) -> None:
    from depthcloud.io import write_cloud
    from depthcloud.io.ply import write_ply

    if path.suffix.lower() == ".ply":
        write_ply(path, cloud, binary=not ascii_, comments=[_ascii(c) for c in comments], overwrite=True)
    else:
        write_cloud(path, cloud, overwrite=True, ascii=ascii_)


def _preview(path: Path, rgb: np.ndarray, depth: np.ndarray, cloud: PointCloud, *, overwrite: bool) -> None:
    from depthcloud import viz

    lo, hi = viz.value_range(depth)
    pic = viz.with_colorbar(viz.colorize(depth, vmin=lo, vmax=hi), vmin=lo, vmax=hi, label="m")
    h, w = rgb.shape[:2]
    render = viz.render_cloud(cloud.to_frame("optical") if cloud.frame != "optical" else cloud, view="left",
                              width=w, height=h, point_size=1)
    from depthcloud.io.depthimage import write_png

    # write_png, not viz.save_png: the picture appears whole or not at all, like every other output
    write_png(path, viz.side_by_side([rgb, pic, render], labels=["image", "depth (m)", "cloud, seen from the left"]),
              overwrite=overwrite)


def _run(inputs: list[Path], output: Path, model_path: Path, *, camera: Path | None, fx: float | None,
         fy: float | None, cx: float | None, cy: float | None, fov: float | None, sensor_width: float | None,
         kind: str | None, min_depth: float, max_depth: float, align: list[Path] | None, depth_scale: float | None,
         device: str, input_size: int, save_depth: bool, preview: Path | None, frame: str, ascii_: bool,
         overwrite: bool) -> None:
    from depthcloud.geometry import Unprojector
    from depthcloud.mono.inputs import expand_inputs
    from depthcloud.mono.pipeline import CameraOptions, estimate
    from depthcloud.mono.runtime import DepthModel

    if frame not in FRAMES:
        raise InputError(f"--frame: expected one of {', '.join(FRAMES)}, got {frame!r}")
    items = expand_inputs(inputs)
    opts: dict[str, Any] = {"fx": fx, "fy": fy, "cx": cx, "cy": cy, "fov_deg": fov, "sensor_width_mm": sensor_width}
    camera_opts = CameraOptions.from_file(camera, **opts) if camera is not None else CameraOptions(**opts)
    model = DepthModel(check_input(model_path), kind=kind, device=device, input_size=input_size)
    if align:
        if len(align) != len(items) or any(i.kind != "image" for i in items):
            raise InputError(f"--align: given {len(align)} time(s) for {len(items)} input(s); give one per image "
                             "(videos cannot be aligned to one depth)")
        aligns = [_read_align(a, depth_scale=depth_scale) for a in align]
    elif model.kind == "relative":
        raise InputError(f"{model.name} is a relative model: it predicts depth only up to scale and shift; pass "
                         "--align DEPTH|CLOUD|RECORDING (metric depth of the same view) or use a metric model")
    else:
        aligns = None
    units, previews = _plan(items, output, camera_opts, aligns, overwrite=overwrite, save_depth=save_depth,
                            preview=preview)
    total = sum(max(u.frames, 1) for u in units)
    unprojectors: dict[Any, Unprojector] = {}
    written = 0

    def work() -> Iterator[None]:
        nonlocal written
        for unit, pv in zip(units, previews, strict=True):
            for k, (out, rgb, cam) in enumerate(_frames_of(unit)):
                result = estimate(model, rgb, cam, align=unit.align)
                up = unprojectors.get(cam.intrinsics) or unprojectors.setdefault(cam.intrinsics, Unprojector(cam.intrinsics))
                cloud = up(result.depth, color=rgb, min_depth_m=min_depth, max_depth_m=max_depth)
                if frame != "optical":
                    cloud = cloud.to_frame(frame)
                intr = cam.intrinsics
                notes = [f"depthcloud mono: model {model.name} ({model.kind}, kind from {model.kind_source})",
                         f"intrinsics: {cam.source}",
                         f"camera fx {intr.fx!r} fy {intr.fy!r} cx {intr.cx!r} cy {intr.cy!r} size {intr.width}x{intr.height}"]
                if result.fit is not None:
                    notes.append(result.fit.describe())
                if unit.item.kind == "video":
                    check_output(out, overwrite=True)
                out.parent.mkdir(parents=True, exist_ok=True)
                _write_cloud(out, cloud, notes, ascii_=ascii_)
                if save_depth:
                    _save_depth(out, result.depth)
                if pv is not None:
                    pv_path = pv if unit.item.kind == "image" else pv / f"{out.stem}.png"
                    pv_path.parent.mkdir(parents=True, exist_ok=True)
                    _preview(pv_path, rgb, result.depth, cloud, overwrite=overwrite or unit.item.kind == "video")
                written += 1
                if unit.item.kind == "image" or k == 0:
                    fit = f"; {result.fit.describe()}" if result.fit is not None else ""
                    what = out if unit.item.kind == "image" else f"{unit.item.path} → {out.parent}/{unit.item.name}_*.ply"
                    console.print(f"{what}: {len(cloud)} points; intrinsics: {cam.source}; model {model.name} "
                                  f"({model.kind}){fit}", soft_wrap=True)
                    if result.fit is not None and result.fit.points_used < 0.5 * result.fit.points_total:
                        err_console.print(f"warning: {out}: only {result.fit.points_used} of {result.fit.points_total} "
                                          "alignment samples agree with the fit; is the metric depth of this view?")
                    if len(cloud) == 0:
                        err_console.print(f"warning: {out}: the cloud is empty (every depth outside "
                                          f"[{min_depth:g}, {max_depth:g}] m?)")
                yield None

    for _ in progress(work(), total=total, label="mono → cloud"):
        pass
    if any(u.item.kind == "video" for u in units):
        console.print(f"{written} cloud(s) written")


def _save_depth(cloud_path: Path, depth: np.ndarray) -> None:
    from depthcloud.io import write_depth_png, write_pfm

    png, pfm = _side_paths(cloud_path, save_depth=True)
    write_pfm(pfm, depth, overwrite=True)
    far = depth > 65.535
    if far.any():
        err_console.print(f"warning: {png}: {int(far.sum())} pixel(s) beyond 65.535 m do not fit 16-bit mm and "
                          f"are stored as 0; {pfm.name} has them")
        depth = np.where(far, 0.0, depth).astype(np.float32)
    write_depth_png(png, depth, overwrite=True)


@mono_app.command("run")
def run_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="Images, folders of images, or video files.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output: a cloud FILE (.ply .pcd .xyz .csv .npz …) for one image; a FOLDER for several images or a video.")],
    model: ModelOpt,
    camera: Annotated[Path | None, typer.Option("--camera", help="Calibration file (any format depthcloud reads), rescaled to the image size.")] = None,
    fx: Annotated[float | None, typer.Option("--fx", help="Focal length x, pixels of the image.")] = None,
    fy: Annotated[float | None, typer.Option("--fy", help="Focal length y (default fx).")] = None,
    cx: Annotated[float | None, typer.Option("--cx", help="Principal point x (default the image centre).")] = None,
    cy: Annotated[float | None, typer.Option("--cy", help="Principal point y (default the image centre).")] = None,
    fov: Annotated[float | None, typer.Option("--fov", help="Horizontal field of view, degrees.")] = None,
    sensor_width: Annotated[float | None, typer.Option("--sensor-width", help="Sensor width in mm, for EXIF FocalLength without a 35 mm equivalent.")] = None,
    kind: KindOpt = None,
    min_depth: Annotated[float, typer.Option("--min-depth", help="Drop points nearer than this (metres).")] = 0.0,
    max_depth: Annotated[float, typer.Option("--max-depth", help="Drop points farther than this (metres).")] = math.inf,
    align: Annotated[list[Path] | None, typer.Option("--align", help="Metric depth to fit scale (and shift) to, once per image: a depth image (.png mm, .pfm, .npy), a cloud in the camera's frame, or a .dcrec recording.")] = None,
    depth_scale: Annotated[float | None, typer.Option("--depth-scale", help="Metres per stored unit of a PNG --align image (default 0.001).")] = None,
    device: DeviceOpt = "cpu",
    input_size: SizeOpt = 518,
    save_depth: Annotated[bool, typer.Option("--save-depth", help="Also write the metric depth beside each cloud: NAME.depth.png (16-bit mm) and NAME.depth.pfm (float metres).")] = False,
    preview: Annotated[Path | None, typer.Option("--preview", help="Picture image | depth with colour bar | cloud: a .png for one image, a folder for several.")] = None,
    frame: Annotated[str, typer.Option("--frame", help=f"Frame of the written points: {', '.join(FRAMES)}.")] = "optical",
    ascii_: Annotated[bool, typer.Option("--ascii", help="Write ASCII instead of binary where the format has both.")] = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Images or videos → metric, coloured clouds (one per image or frame) with stated intrinsics."""
    _run(inputs, output, model, camera=camera, fx=fx, fy=fy, cx=cx, cy=cy, fov=fov, sensor_width=sensor_width,
         kind=kind, min_depth=min_depth, max_depth=max_depth, align=align, depth_scale=depth_scale, device=device,
         input_size=input_size, save_depth=save_depth, preview=preview, frame=frame, ascii_=ascii_,
         overwrite=overwrite)


# -- eval -------------------------------------------------------------------------------------------

def _pairs_in_folder(folder: Path) -> list[tuple[Path, Path]]:
    match = folder / "rgbd.match"
    if match.is_file():
        return _pairs_in_match(match)
    cdir, ddir = folder / "color", folder / "depth"
    if not (cdir.is_dir() and ddir.is_dir()):
        raise InputError("expected a folder with color/ and depth/ (or an rgbd.match file)", path=folder)
    from depthcloud.mono.inputs import IMAGE_EXTS

    depths = {p.stem: p for p in ddir.iterdir() if p.suffix.lower() in _DEPTH_EXTS}
    pairs = [(c, depths[c.stem]) for c in sorted(cdir.iterdir()) if c.suffix.lower() in IMAGE_EXTS and c.stem in depths]
    if not pairs:
        raise InputError("no colour image in color/ has a depth image of the same name in depth/", path=folder)
    return pairs


def _pairs_in_match(path: Path) -> list[tuple[Path, Path]]:
    """Open3D's rgbd.match: one 'DEPTH COLOR' pair per line, relative to the file's folder."""
    pairs = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if len(words) != 2:
            raise FormatError("expected 'DEPTH COLOR' (two paths)", path=path, line=n)
        pairs.append((path.parent / words[1], path.parent / words[0]))
    if not pairs:
        raise FormatError("no pairs", path=path)
    return pairs


def _expand_pairs(items: list[str]) -> list[tuple[Path, Path]]:
    pairs: list[tuple[Path, Path]] = []
    for item in items:
        if "," in item:
            color, _, depth = item.partition(",")
            pairs.append((Path(color), Path(depth)))
        elif Path(item).is_dir():
            pairs.extend(_pairs_in_folder(Path(item)))
        elif Path(item).is_file():
            pairs.extend(_pairs_in_match(Path(item)))
        else:
            raise InputError("no such pair folder or match file (or give COLOR,DEPTH)", path=item)
    for color_path, depth_path in pairs:
        check_input(color_path)
        check_input(depth_path)
    return pairs


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "–"
    return f"{100 * x:.1f} %" if pct else f"{x:.4f}"


@mono_app.command("eval")
def eval_cmd(
    pairs: Annotated[list[str], typer.Argument(help="RGB-D pairs: folders with color/ + depth/ (or rgbd.match), match files ('DEPTH COLOR' per line), or COLOR,DEPTH.", show_default=False)],
    model: ModelOpt,
    kind: KindOpt = None,
    depth_scale: Annotated[float | None, typer.Option("--depth-scale", help="Metres per stored unit of PNG ground truth (default 0.001).")] = None,
    min_depth: Annotated[float, typer.Option("--min-depth", help="Score ground truth from this depth (metres).")] = 1e-3,
    max_depth: Annotated[float, typer.Option("--max-depth", help="Score ground truth up to this depth (metres).")] = math.inf,
    device: DeviceOpt = "cpu",
    input_size: SizeOpt = 518,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Also write the scores as a JSON FILE.")] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Score a model on RGB-D pairs: AbsRel, RMSE, δ<1.25, raw and aligned to the ground truth."""
    from rich.table import Table

    from depthcloud.io.depthimage import read_color, read_depth
    from depthcloud.mono.metrics import score_prediction
    from depthcloud.mono.runtime import DepthModel

    found = _expand_pairs(pairs)
    net = DepthModel(check_input(model), kind=kind, device=device, input_size=input_size)
    if output is not None:
        check_output(output, overwrite=overwrite)
    rows: list[dict[str, Any]] = []
    for color, depth in progress(found, total=len(found), label="mono eval"):
        gt = read_depth(depth, depth_scale=depth_scale)
        rgb = read_color(color)
        if rgb.shape[:2] != gt.shape:
            raise InputError(f"the colour image is {rgb.shape[1]}x{rgb.shape[0]}, its depth {gt.shape[1]}x{gt.shape[0]}; "
                             "pairs must be registered at one size", path=color)
        try:
            score = score_prediction(net.predict(rgb), gt, kind=net.kind, min_depth_m=min_depth, max_depth_m=max_depth)
        except InputError as exc:
            raise InputError(exc.message, path=depth) from exc
        rows.append({"color": str(color), "depth": str(depth), **score.to_dict()})
    table = Table(title=f"{net.name} ({net.kind}) on {len(rows)} pair(s)",
                  caption="* aligned to the ground truth; RMSE in metres; δ1 = share with δ<1.25")
    table.add_column("pair", no_wrap=True)
    for col in ("AbsRel", "RMSE", "δ1", "AbsRel*", "RMSE*", "δ1*", "scale"):
        table.add_column(col, justify="right", no_wrap=True)

    def mean(key: str, field: str) -> float | None:
        vals = [r[key][field] for r in rows if r[key] is not None]
        return float(np.mean(vals)) if vals else None

    for r in rows:
        raw, al = r["raw"] or {}, r["aligned"]
        table.add_row(Path(r["color"]).name, _fmt(raw.get("abs_rel")), _fmt(raw.get("rmse_m")),
                      _fmt(raw.get("delta1"), True), _fmt(al["abs_rel"]), _fmt(al["rmse_m"]), _fmt(al["delta1"], True),
                      f"{r['fit']['scale']:.4g}")
    summary = {k: {f: mean(k, f) for f in ("abs_rel", "rmse_m", "delta1")} for k in ("raw", "aligned")}
    if len(rows) > 1:
        table.add_row("mean", _fmt(summary["raw"]["abs_rel"]), _fmt(summary["raw"]["rmse_m"]),
                      _fmt(summary["raw"]["delta1"], True), _fmt(summary["aligned"]["abs_rel"]),
                      _fmt(summary["aligned"]["rmse_m"]), _fmt(summary["aligned"]["delta1"], True), "")
    console.print(table)
    if output is not None:
        from depthcloud.io._files import write_atomic

        doc = {"model": str(model), "kind": net.kind, "pairs": rows, "mean": summary,
               "min_depth_m": min_depth, "max_depth_m": None if math.isinf(max_depth) else max_depth}
        write_atomic(output, (json.dumps(doc, indent=2) + "\n").encode("utf-8"), overwrite=overwrite)
        console.print(f"scores → {output}")


# -- export -----------------------------------------------------------------------------------------

@mono_app.command("export")
def export_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Depth Anything V2 checkpoint (.pth) or Hugging Face model folder.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="The ONNX FILE to write.")],
    encoder: Annotated[str, typer.Option("--encoder", help="vits, vitb or vitl.")],
    kind: Annotated[str, typer.Option("--kind", help="metric or relative.")],
    max_depth: Annotated[float | None, typer.Option("--max-depth", help="Metric models: the head's range in metres (20 indoor/Hypersim, 80 outdoor/VKITTI).")] = None,
    input_size: SizeOpt = 518,
    overwrite: OverwriteOpt = False,
) -> None:
    """Convert a Depth Anything V2 checkpoint to the ONNX interface `depthcloud mono` runs (needs the mono-export extra)."""
    from depthcloud.mono.export import KINDS, encoders, export_checkpoint

    for option, value, allowed in (("--encoder", encoder, encoders()), ("--kind", kind, KINDS)):
        if value not in allowed:
            raise InputError(f"{option}: expected one of {', '.join(allowed)}, got {value!r}")
    out = export_checkpoint(checkpoint, output, encoder=encoder, kind=kind, max_depth_m=max_depth,
                            overwrite=overwrite, input_size=input_size)
    console.print(f"{checkpoint} → {out} ({encoder}, {kind})", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(mono_app, name="mono")
