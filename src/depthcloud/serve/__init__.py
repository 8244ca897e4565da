"""The point-cloud server and its clients.

* :class:`CloudServer` (``server.py``): the newest cloud over websocket (compatible mode on ``/``,
  binary mode on ``/v1``) and HTTP (``/cloud.ply``, ``/cloud.pcd``, ``/cloud.json``, ``/health``,
  ``/metrics``) on one port; ``depthcloud serve`` is a thin shell over it.
* :class:`ServeConfig` / :func:`load_config` (``config.py``): flags > ``DEPTHCLOUD_*`` > file > defaults.
* ``protocol.py``: the wire formats, pure encode/decode (docs/protocol.md).
* ``client.py``: sync and async clients (``get_cloud``, ``subscribe``, ``info``, ``get_compat``).
* ``viewer/`` + ``viewer_assets.py``: the browser viewer at ``/view`` (docs/viewer.md);
  ``viewfiles.py``: ``depthcloud view FILE…``; ``foxglove_bridge.py``: ``serve --foxglove``.

websockets and zstandard are imported where used (the ``serve`` extra).
"""

from depthcloud.serve.config import ServeConfig, load_config
from depthcloud.serve.server import CloudServer

__all__ = ["CloudServer", "ServeConfig", "load_config"]
