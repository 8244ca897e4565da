"""Choose the ``quality`` stereo preset by leave-one-out cross-validation over every Middlebury scene.

The presets used to be tuned on the 2014 quarter-size scenes and judged on them, which flatters them
(0.51× the tutorial's bad-2.0 there, worse on scenes left out). Here every candidate setting runs on
every scene (2014 quarter size: a scene and its variants are one unit; each legacy scene is one
unit); for each unit, the candidate with the lowest mean error ratio (bad-2.0 ÷ the tutorial's, so
that easy and hard scenes weigh alike; the 2014 and legacy sets weigh half each) on all the *other*
units is chosen and scored on the held-out
one. The held-out figure is the honest one; the preset ships the candidate chosen on all units.

Scores are cached in bench/results/stereo_tuning_cache.json (key: setting + scene), so a run that was
stopped resumes where it stopped. Scoring and data loading are bench_stereo_accuracy's.

Usage: python bench/tune_stereo.py [--quick]   (--quick: 4 candidates, 3 scenes of each set)
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import md_table, versions, write_results  # noqa: E402
from bench_stereo_accuracy import LEGACY_FILES, LEGACY_SCALE, VARIANT_OF, data_root, score  # noqa: E402
from depthcloud.camera import Intrinsics, StereoRig  # noqa: E402
from depthcloud.io.calibfiles import read_middlebury_calib  # noqa: E402
from depthcloud.io.depthimage import read_color  # noqa: E402
from depthcloud.io.pfm import read_pfm  # noqa: E402
from depthcloud.stereo import BASELINES, PRESETS, MatcherParams, StereoMatcher  # noqa: E402

CACHE = HERE / "results" / "stereo_tuning_cache.json"


def candidates() -> dict[str, MatcherParams]:
    """The current quality preset and its neighbours along the knobs that move bad-2.0 most."""
    q = PRESETS["quality"]
    out: dict[str, MatcherParams] = {"quality": q}
    for bs in (3, 5):
        for p1, p2 in ((10, 40), (16, 64), (8, 48), (24, 96)):
            for wm in (7, 11):
                out[f"bs{bs}_p{p1}-{p2}_wm{wm}"] = dataclasses.replace(q, block_size=bs, p1=p1, p2=p2, weighted_median=wm)
    # Contrast normalisation (window 7) is fixed, not tuned: it is what makes matching indifferent
    # to gain and exposure differences between the cameras, which only the 2014 E/L variants show;
    # tuned, it is dropped whenever those scenes are held out (measured: Piano 18.6 → 26.6 % bad).
    for ur in (10, 15):
        out[f"uniq{ur}"] = dataclasses.replace(q, uniqueness_ratio=ur)
    for sw, sr in ((100, 2), (200, 1)):
        out[f"speckle{sw}-{sr}"] = dataclasses.replace(q, speckle_window=sw, speckle_range=sr)
    # Second stage of the search: an explicit left-right check before filling, and WLS smoothing.
    for tol in (1.0, 2.0):
        out[f"lr{tol:g}"] = dataclasses.replace(q, lr_check_px=tol)
    for lam, sigma in ((8000.0, 1.5), (4000.0, 1.0), (16000.0, 2.0)):
        out[f"wls{lam:g}-{sigma:g}"] = dataclasses.replace(q, wls=True, wls_lambda=lam, wls_sigma=sigma)
    out["uniq10_wm11"] = dataclasses.replace(q, uniqueness_ratio=10, weighted_median=11)
    return out


def scenes(root: Path, quick: bool) -> list[dict[str, Any]]:
    """Every scored pair: name, unit (variants share one), set, images, GT, mask, search range, rig."""
    out: list[dict[str, Any]] = []
    e3 = root / "middlebury_eval3_q"
    names = sorted(p.name for p in e3.iterdir() if (p / "calib.txt").exists())
    for name in names[:3] if quick else names:
        d = e3 / name
        cal = read_middlebury_calib(d / "calib.txt")
        gt = read_pfm(d / "disp0GT.pfm")
        mask = (read_color(d / "mask0nocc.png")[:, :, 0] == 255) & np.isfinite(gt)
        ndisp = cal.ndisp if cal.ndisp is not None else 16 * math.ceil((float(np.nanmax(gt[np.isfinite(gt)])) + 1) / 16)
        out.append({"name": name, "unit": VARIANT_OF.get(name, name), "set": "2014",
                    "left": read_color(d / "im0.png"), "right": read_color(d / "im1.png"), "gt": gt, "mask": mask,
                    "range": (0, 16 * math.ceil(ndisp / 16)), "rig": cal.rig})
    legacy = root / "middlebury_legacy"
    names = sorted(p.name for p in legacy.iterdir() if p.is_dir()) if legacy.is_dir() else []
    for name in names[:3] if quick else names:
        d = legacy / name
        lname, rname, gname = LEGACY_FILES.get(name, ("view1.png", "view5.png", "disp1.png"))
        raw = read_color(d / gname)[:, :, 0].astype(np.float32)
        mask = raw > 0
        if (d / "nonocc.png").exists():
            mask &= read_color(d / "nonocc.png")[:, :, 0] == 255
        gt = np.where(raw > 0, raw / LEGACY_SCALE.get(name, 3), np.nan).astype(np.float32)
        left = read_color(d / lname)
        h, w = left.shape[:2]
        out.append({"name": name, "unit": name, "set": "legacy", "left": left, "right": read_color(d / rname),
                    "gt": gt, "mask": mask, "range": (0, 16 * math.ceil((float(np.nanmax(gt)) + 1) / 16)),
                    "rig": StereoRig.from_rectified(Intrinsics(1.0, 1.0, w / 2, h / 2, w, h), 1.0)})
    return out


def run_all(pairs: list[dict[str, Any]], settings: dict[str, MatcherParams]) -> dict[str, dict[str, float]]:
    """bad-2.0 of every setting on every pair, from the cache where it holds the same setting."""
    cache: dict[str, Any] = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    bad: dict[str, dict[str, float]] = {}
    for name, params in settings.items():
        bad[name] = {}
        for pair in pairs:
            key = f"{params!r}|{pair['set']}/{pair['name']}"
            if key not in cache:
                disp, _ = StereoMatcher(pair["rig"], preset=params, search_range=pair["range"]).disparity(
                    pair["left"], pair["right"])
                cache[key] = score(disp, pair["gt"], pair["mask"])[0]
                CACHE.parent.mkdir(parents=True, exist_ok=True)
                CACHE.write_text(json.dumps(cache, indent=0))
            bad[name][pair["name"]] = cache[key]
        print(f"{name}: mean bad-2.0 {np.mean(list(bad[name].values())):.2f}", flush=True)
    return bad


def unit_scores(bad: dict[str, dict[str, float]], pairs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per setting, per unit: the mean bad-2.0 of the unit's pairs."""
    out: dict[str, dict[str, float]] = {}
    for name, per_pair in bad.items():
        groups: dict[str, list[float]] = {}
        for p in pairs:
            groups.setdefault(p["unit"], []).append(per_pair[p["name"]])
        out[name] = {u: float(np.mean(v)) for u, v in groups.items()}
    return out


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    cv2.setNumThreads(1)  # one core: the scores do not depend on it, and the machine may be shared
    root = data_root()
    if not (root / "middlebury_eval3_q").is_dir():
        print(f"middlebury_eval3_q not found under {root} (set DEPTHCLOUD_DATA)", file=sys.stderr)
        return 1
    pairs = scenes(root, quick)
    cands = candidates()
    if quick:
        cands = dict(list(cands.items())[:4])
    units = unit_scores(run_all(pairs, {"tutorial": BASELINES["tutorial"], **cands}), pairs)
    tut = units.pop("tutorial")
    set_of = {p["unit"]: p["set"] for p in pairs}
    ratio = {n: {u: s / tut[u] for u, s in per.items()} for n, per in units.items()}

    def best(exclude: str | None) -> str:
        # Each set weighs half, whatever its number of scenes: the 21 legacy scenes must not decide
        # alone what suits the 2014 ones (which differ: lighting and exposure changes, larger ranges).
        def objective(n: str) -> float:
            per_set = [[r for u, r in ratio[n].items() if u != exclude and set_of[u] == s] for s in ("2014", "legacy")]
            return float(np.mean([np.mean(rs) for rs in per_set if rs]))

        return min(ratio, key=objective)

    held: dict[str, dict[str, Any]] = {}
    for u in tut:
        chosen = best(u)
        held[u] = {"set": set_of[u], "chosen": chosen, "bad2": units[chosen][u], "tutorial": tut[u],
                   "in_sample_quality": units["quality"][u]}
    final = best(None)
    summary: dict[str, dict[str, float]] = {}
    for which in ("2014", "legacy", "all"):
        us = [u for u in held if which == "all" or held[u]["set"] == which]
        if not us:
            continue
        summary[which] = {
            "held_out_bad2": float(np.mean([held[u]["bad2"] for u in us])),
            "tutorial_bad2": float(np.mean([held[u]["tutorial"] for u in us])),
            "chosen_all_bad2": float(np.mean([units[final][u] for u in us])),
            "old_quality_bad2": float(np.mean([units["quality"][u] for u in us])),
        }
        s = summary[which]
        s["held_out_over_tutorial"] = s["held_out_bad2"] / s["tutorial_bad2"]
        s["old_quality_over_tutorial"] = s["old_quality_bad2"] / s["tutorial_bad2"]
        s["mean_of_unit_ratios_held_out"] = float(np.mean([held[u]["bad2"] / held[u]["tutorial"] for u in us]))
    md = ["## Leave-one-out: each unit scored with the setting chosen on all the others\n",
          md_table(["unit", "set", "chosen on the others", "held-out bad-2.0 %", "tutorial %", "ratio"],
                   [[u, h["set"], h["chosen"], f"{h['bad2']:.1f}", f"{h['tutorial']:.1f}",
                     f"{h['bad2'] / h['tutorial']:.3f}"] for u, h in held.items()]),
          "\n## Summary (mean bad-2.0 over units; ratio = ÷ tutorial's mean; goal ≤ 0.5 on every set)\n",
          md_table(["set", "held-out", "tutorial", "held-out ÷ tutorial", "mean of unit ratios", "old quality ÷ tutorial"],
                   [[k, f"{s['held_out_bad2']:.2f}", f"{s['tutorial_bad2']:.2f}", f"**{s['held_out_over_tutorial']:.3f}**",
                     f"{s['mean_of_unit_ratios_held_out']:.3f}", f"{s['old_quality_over_tutorial']:.3f}"]
                    for k, s in summary.items()]),
          f"\nChosen on all units (ships as `quality`): `{final}` = {cands[final]}\n",
          "\n## Every candidate: mean ratio to the tutorial over all units\n",
          md_table(["candidate", "mean unit ratio"],
                   sorted(([n, f"{np.mean(list(r.values())):.4f}"] for n, r in ratio.items()), key=lambda x: x[1]))]
    write_results("stereo_tuning", {"quick": quick, "held_out": held, "summary": summary, "final": final,
                                    "final_params": dataclasses.asdict(cands[final]),
                                    "versions": versions("opencv-contrib-python-headless", "numpy")}, "\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
