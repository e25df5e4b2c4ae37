"""ThingsBoard-compatible HTTP device API (``device.router``, put on an app by ``device.mount``)."""
