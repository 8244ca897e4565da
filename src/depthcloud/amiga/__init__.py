"""farm-ng Amiga OAK camera service: client, emulator, event logs.

* :mod:`~depthcloud.amiga.messages` — the OAK protobuf messages (farm-ng-amiga's when installed, else a
  wire-compatible schema built here) and the disparity images they carry.
* :mod:`~depthcloud.amiga.client` — ``service_config.json``, the asyncio client (every wait has a
  timeout), and the 8-bit disparity → depth → points model.
* :mod:`~depthcloud.amiga.emulator` — an OAK camera service on farm-ng-core's ``EventServiceGrpc``,
  serving planes at known distances or a recording, on loopback by default.
* :mod:`~depthcloud.amiga.eventlog` — farm-ng event logs (``.bin``): read (cut files too) and write.
* :mod:`~depthcloud.amiga.source` — the ``amiga:`` frame source (live service or ``.bin``).

Importing this package imports nothing from farm-ng; the modules that need farm-ng-core raise
:class:`~depthcloud.errors.MissingDependencyError` naming the ``amiga`` extra when it is missing.
"""
