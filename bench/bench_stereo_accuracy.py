"""Stereo accuracy against Middlebury ground truth: the presets beside the tutorial's and OpenCV's settings.

(The issue calls this benchmark ``bench/stereo_accuracy.py``.)

Middlebury 2014 quarter size (middlebury_eval3_q, 11 pairs): per scene and setting, bad-2.0 = % of
non-occluded GT pixels (mask0nocc == 255, finite GT) whose |d − d_gt| > 2 px, where a pixel without
an estimate counts as bad; MAE over the pixels with an estimate; and, for every setting, the share
of those pixels whose depth Z = f·B/(d + doffs) is within 2 % of the GT depth (no estimate = miss).
Averages count a scene and its variants (MotorcycleE, PianoL, PlaytableP) as one scene.

The legacy scenes (middlebury_legacy: 2001/2003/2005/2006) have no calibration, so only disparity
is scored, on every pixel with GT (value / scale; 0 = unknown; Tsukuba on its nonocc.png mask), with
a search range from the GT maximum rounded up to 16 as Middlebury's ndisp is.

Usage: python bench/bench_stereo_accuracy.py [--quick]   (--quick: 3 scenes of each set)
Data: $DEPTHCLOUD_DATA (default ../shared/data).
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import md_table, versions, write_results
from depthcloud.camera import Intrinsics, StereoRig
from depthcloud.io.calibfiles import read_middlebury_calib
from depthcloud.io.depthimage import read_color
from depthcloud.io.pfm import read_pfm
from depthcloud.stereo import BASELINES, PRESETS, StereoMatcher

SETTINGS = ["tutorial", "opencv", *PRESETS]
VARIANT_OF = {"MotorcycleE": "Motorcycle", "PianoL": "Piano", "PlaytableP": "Playtable"}
# Legacy GT scales (disparity px = value / s), from middlebury_legacy/SOURCE.md.
LEGACY_SCALE = {"Tsukuba": 16, "Venus": 8, "Cones": 4}
LEGACY_FILES = {
    "Tsukuba": ("imL.png", "imR.png", "truedisp.pgm"),
    "Venus": ("imL.png", "imR.png", "disp2.pgm"),
    "Cones": ("imL.png", "imR.png", "disp2.png"),
}


def data_root() -> Path:
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return Path(os.environ.get("DEPTHCLOUD_DATA", default))


def score(disp: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(bad-2.0 %, MAE px) over ``mask``; a NaN estimate counts as bad and is left out of the MAE."""
    d, g = disp[mask], gt[mask]
    err = np.abs(d - g)
    has = np.isfinite(err)
    bad = float(np.mean(~has | (err > 2.0)) * 100.0)
    mae = float(err[has].mean()) if has.any() else math.nan
    return bad, mae


def depth_ok(disp: np.ndarray, gt: np.ndarray, mask: np.ndarray, fb: float, doffs: float) -> float:
    """% of ``mask`` pixels whose depth is within 2 % of the GT depth."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = fb / (disp[mask] + doffs)
        zg = fb / (gt[mask] + doffs)
        ok = np.isfinite(z) & (z > 0) & (np.abs(z - zg) <= 0.02 * zg)
    return float(ok.mean() * 100.0)


def grouped_mean(per_scene: dict[str, float]) -> float:
    groups: dict[str, list[float]] = {}
    for scene, value in per_scene.items():
        groups.setdefault(VARIANT_OF.get(scene, scene), []).append(value)
    return float(np.mean([np.mean(vals) for vals in groups.values()]))


def eval3(root: Path, quick: bool) -> dict[str, Any]:
    folder = root / "middlebury_eval3_q"
    scenes = sorted(p.name for p in folder.iterdir() if (p / "calib.txt").exists())
    if quick:
        scenes = scenes[:3]
    rows: dict[str, dict[str, Any]] = {}
    for scene in scenes:
        d = folder / scene
        cal = read_middlebury_calib(d / "calib.txt")
        left, right = read_color(d / "im0.png"), read_color(d / "im1.png")
        gt = read_pfm(d / "disp0GT.pfm")
        mask = (read_color(d / "mask0nocc.png")[:, :, 0] == 255) & np.isfinite(gt)
        ndisp = cal.ndisp if cal.ndisp is not None else 16 * math.ceil((float(np.nanmax(gt[np.isfinite(gt)])) + 1) / 16)
        fb = cal.rig.focal_px * cal.rig.baseline_m
        rows[scene] = {}
        for name in SETTINGS:
            m = StereoMatcher(cal.rig, preset=name, search_range=(0, 16 * math.ceil(ndisp / 16)))
            t0 = time.perf_counter()
            disp, _ = m.disparity(left, right)
            dt = time.perf_counter() - t0
            bad, mae = score(disp, gt, mask)
            rows[scene][name] = {
                "bad2": bad, "mae": mae, "depth_within_2pct": depth_ok(disp, gt, mask, fb, cal.rig.doffs_px),
                "pixels": int(mask.sum()),
                "seconds": dt,
            }
        print(scene, {k: round(v["bad2"], 1) for k, v in rows[scene].items()}, flush=True)
    means = {
        name: {
            key: grouped_mean({s: rows[s][name][key] for s in scenes})
            for key in ("bad2", "mae", "depth_within_2pct")
        }
        for name in SETTINGS
    }
    for name in SETTINGS:
        # Every non-occluded pixel of every pair counted once (variants included), beside the scene mean.
        n = sum(rows[s][name]["pixels"] for s in scenes)
        means[name]["depth_within_2pct_pooled"] = sum(
            rows[s][name]["depth_within_2pct"] * rows[s][name]["pixels"] for s in scenes
        ) / n
    return {"scenes": rows, "mean": means}


def legacy(root: Path, quick: bool) -> dict[str, Any]:
    folder = root / "middlebury_legacy"
    scenes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if quick:
        scenes = scenes[:3]
    rows: dict[str, dict[str, Any]] = {}
    for scene in scenes:
        d = folder / scene
        lname, rname, gname = LEGACY_FILES.get(scene, ("view1.png", "view5.png", "disp1.png"))
        scale = LEGACY_SCALE.get(scene, 3)
        left, right = read_color(d / lname), read_color(d / rname)
        raw = read_color(d / gname)[:, :, 0].astype(np.float32)
        gt = np.where(raw > 0, raw / scale, np.nan).astype(np.float32)
        mask = raw > 0
        if (d / "nonocc.png").exists():
            mask &= read_color(d / "nonocc.png")[:, :, 0] == 255
        ndisp = 16 * math.ceil((float(np.nanmax(gt)) + 1) / 16)
        h, w = left.shape[:2]
        # Disparity only: any rectified rig of the right size serves the matcher.
        rig = StereoRig.from_rectified(Intrinsics(1.0, 1.0, w / 2, h / 2, w, h), 1.0)
        rows[scene] = {}
        for name in SETTINGS:
            disp, _ = StereoMatcher(rig, preset=name, search_range=(0, ndisp)).disparity(left, right)
            bad, mae = score(disp, gt, mask)
            rows[scene][name] = {"bad2": bad, "mae": mae}
        print(scene, {k: round(v["bad2"], 1) for k, v in rows[scene].items()}, flush=True)
    means = {
        name: {key: float(np.mean([rows[s][name][key] for s in scenes])) for key in ("bad2", "mae")}
        for name in SETTINGS
    }
    return {"scenes": rows, "mean": means}


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    root = data_root()
    if not (root / "middlebury_eval3_q").is_dir():
        print(f"middlebury_eval3_q not found under {root} (set DEPTHCLOUD_DATA)", file=sys.stderr)
        return 1
    e3 = eval3(root, quick)
    lg = legacy(root, quick) if (root / "middlebury_legacy").is_dir() else {"scenes": {}, "mean": {}}
    ratio = e3["mean"]["quality"]["bad2"] / e3["mean"]["tutorial"]["bad2"]
    md = ["## Middlebury 2014 quarter size: bad-2.0 % (non-occluded; no estimate = bad) / MAE px\n"]
    headers = ["scene", *SETTINGS]
    table = [
        [s, *(f"{r[n]['bad2']:.1f} / {r[n]['mae']:.2f}" for n in SETTINGS)] for s, r in e3["scenes"].items()
    ]
    table.append(["**mean** (variants as one)", *(
        f"**{e3['mean'][n]['bad2']:.1f}** / {e3['mean'][n]['mae']:.2f}" for n in SETTINGS
    )])
    md.append(md_table(headers, table))
    md.append(f"\nquality / tutorial mean bad-2.0 = **{ratio:.3f}** (target ≤ 0.6)\n")
    md.append("\n## Depth within 2 % of GT, % of non-occluded pixels\n")
    table = [[s, *(f"{r[n]['depth_within_2pct']:.1f}" for n in SETTINGS)] for s, r in e3["scenes"].items()]
    table.append(["**mean** (variants as one)", *(f"**{e3['mean'][n]['depth_within_2pct']:.1f}**" for n in SETTINGS)])
    table.append(["all pixels pooled", *(f"{e3['mean'][n]['depth_within_2pct_pooled']:.1f}" for n in SETTINGS)])
    md.append(md_table(headers, table))
    if lg["scenes"]:
        md.append("\n## Legacy scenes: bad-2.0 % (pixels with GT) / MAE px\n")
        table = [[s, *(f"{r[n]['bad2']:.1f} / {r[n]['mae']:.2f}" for n in SETTINGS)] for s, r in lg["scenes"].items()]
        table.append(["**mean**", *(f"**{lg['mean'][n]['bad2']:.1f}** / {lg['mean'][n]['mae']:.2f}" for n in SETTINGS)])
        md.append(md_table(headers, table))
    md.append("\nSettings: " + "; ".join(f"{n} = {params}" for n, params in {**BASELINES, **PRESETS}.items()) + "\n")
    write_results(
        "stereo_accuracy",
        {"quick": quick, "versions": versions("opencv-contrib-python-headless", "numpy"),
         "eval3_q": e3, "legacy": lg, "quality_over_tutorial_bad2": ratio},
        "\n".join(md),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
