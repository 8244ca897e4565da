"""The viewer's HTTP routes on `depthcloud serve` (no browser): the page, its files, the token, the
same-origin Content-Security-Policy, and that the files ship inside the package."""

from __future__ import annotations

from importlib import resources

from depthcloud.serve import viewer_assets
from test_serve_server import http_get, running


async def test_view_routes_with_a_token():
    async with running(token="s3cret") as srv:
        status, _, body = await http_get(srv.url, "/view")
        assert status == 401 and b"token" in body
        status, headers, body = await http_get(srv.url, "/view?token=s3cret")
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert b'src="/view/viewer.js"' in body
        csp = headers["content-security-policy"]
        assert "connect-src 'self'" in csp and "script-src 'self'" in csp and "default-src 'none'" in csp
        for path, kind in (("/view/viewer.js", "text/javascript"), ("/view/viewer.css", "text/css")):
            status, headers, body = await http_get(srv.url, path)  # no token: no data in them
            assert status == 200 and headers["content-type"].startswith(kind) and len(body) > 500
        status, _, _ = await http_get(srv.url, "/view/other.js?token=s3cret")
        assert status == 404
        status, _, body = await http_get(srv.url, "/nope?token=s3cret")
        assert status == 404 and b"/view (browser viewer)" in body


def test_the_page_is_package_data_and_fetches_nothing_from_elsewhere():
    files = resources.files("depthcloud.serve.viewer")
    for name in ("index.html", "viewer.js", "viewer.css"):
        text = files.joinpath(name).read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name
    assert viewer_assets.asset("/view") is not None and viewer_assets.asset("/view/x") is None
    assert viewer_assets.is_public("/view/viewer.js") and not viewer_assets.is_public("/view")
