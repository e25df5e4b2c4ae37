"""Alarms: the store (``store``), a dark pole's root alarm (``outages``) and the WebSocket
fan-out of alarm changes (``stream``)."""
