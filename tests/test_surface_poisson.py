"""Poisson reconstruction through Open3D: a sampled sphere with its normals, a one-view cap without
(normals computed, with a warning), density trimming, and the errors."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

from depthcloud.cloud import PointCloud
from depthcloud.errors import InputError, MissingDependencyError

pytest.importorskip("open3d")
from depthcloud.surface.poisson import poisson_mesh

C, R = np.array([0.1, -0.2, 1.5]), 0.4


def _sphere(n: int = 8000, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    u = np.random.default_rng(seed).normal(size=(n, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return (C + R * u).astype(np.float32), u.astype(np.float32)


def test_sphere_with_normals():
    pts, nrm = _sphere()
    colors = np.where(pts[:, :1] > C[0], [[250, 10, 10]], [[10, 10, 250]]).astype(np.uint8)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="the cloud had no normals")
        mesh = poisson_mesh(PointCloud(pts, colors, nrm, frame="zup"), depth=6, density_quantile=0.0)
    err = np.abs(np.linalg.norm(mesh.vertices - C, axis=1) - R)
    assert err.max() < 0.005 and err.mean() < 0.001
    assert mesh.frame == "zup" and mesh.normals is not None and mesh.colors is not None
    # closed and facing out
    f = mesh.faces
    _, count = np.unique(np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1), axis=0,
                         return_counts=True)
    assert np.all(count == 2)
    out = np.einsum("ij,ij->i", mesh.face_normals(), mesh.vertices[f].mean(axis=1) - C)
    assert (out > 0).mean() > 0.999
    assert mesh.area() == pytest.approx(4 * np.pi * R**2, rel=0.02)
    red = mesh.vertices[:, 0] > C[0] + 0.1
    assert np.all(mesh.colors[red, 0] > 200)  # colours interpolated from the points


def test_cap_without_normals_warns_and_trims_the_invented_side():
    pts, nrm = _sphere()
    seen = nrm @ (-C / np.linalg.norm(C)) > 0.2  # the cap a camera at the origin sees
    with pytest.warns(UserWarning, match="normals computed from 20 neighbours"):
        mesh = poisson_mesh(PointCloud(pts[seen]), depth=6, density_quantile=0.1)
    err = np.abs(np.linalg.norm(mesh.vertices - C, axis=1) - R)
    assert np.percentile(err, 95) < 0.01
    with pytest.warns(UserWarning):
        untrimmed = poisson_mesh(PointCloud(pts[seen]), depth=6, density_quantile=0.0)
    assert len(mesh) < len(untrimmed)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"depth": 0}, "depth"),
    ({"density_quantile": 1.0}, r"density_quantile: expected a value in \[0, 1\)"),
    ({"density_quantile": -0.1}, "density_quantile"),
])
def test_bad_parameters(kwargs, match):
    pts, nrm = _sphere(100)
    with pytest.raises(InputError, match=match):
        poisson_mesh(PointCloud(pts, normals=nrm), **kwargs)


def test_too_few_points_and_wrong_type():
    with pytest.raises(InputError, match="at least 3 points"):
        poisson_mesh(PointCloud(np.zeros((2, 3), np.float32), normals=np.ones((2, 3), np.float32)))
    with pytest.raises(InputError, match="expected a PointCloud"):
        poisson_mesh(np.zeros((10, 3)))  # type: ignore[arg-type]


def test_missing_open3d_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "open3d", None)
    pts, nrm = _sphere(100)
    with pytest.raises(MissingDependencyError, match=r"depthcloud\[surface\]"):
        poisson_mesh(PointCloud(pts, normals=nrm))
