"""ThingsBoard-compatible HTTP device API (``device.device_router``)."""
