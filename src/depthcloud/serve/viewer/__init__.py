"""The browser viewer's static files: ``index.html``, ``viewer.js``, ``viewer.css`` (package data).

They are plain files (an ES module, no build step, nothing fetched from elsewhere); the server
hands them out through :func:`depthcloud.serve.viewer_assets.asset`.
"""
