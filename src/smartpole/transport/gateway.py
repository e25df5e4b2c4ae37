"""ThingsBoard's gateway API messages, read and written alike by both MQTT transports (the
built-in endpoint's ``v1/gateway/...`` and broker mode's ``sp/v1/{gateway}/gateway/...``)."""

from __future__ import annotations

from typing import Any

from smartpole.errors import InvalidInput

__all__ = [
    "attribute_request",
    "attribute_response",
    "command",
    "device_of",
    "reports",
    "rpc_reply",
]


def reports(data: Any, what: str) -> dict[str, Any]:
    """A telemetry, attributes or claim message: ``{"device name": ..., ...}``."""
    if not isinstance(data, dict) or not data:
        raise InvalidInput(f'gateway {what} needs {{"device name": ...}}')
    return data


def device_of(data: Any, what: str) -> str:
    """The device a connect or disconnect message names: ``{"device": "name"}``."""
    if not isinstance(data, dict) or not isinstance(data.get("device"), str) or not data["device"]:
        raise InvalidInput(f'{what} needs {{"device": "name"}}')
    return str(data["device"])


def attribute_request(data: Any) -> tuple[Any, list[str] | None, bool]:
    """``(device name, keys or None for all, client scope?)`` of an attribute request
    ``{"id": n, "device": "name", "client": bool, "key": "k"}`` (or ``"keys": [...]``)."""
    if not isinstance(data, dict) or "id" not in data:
        raise InvalidInput('attribute request needs {"id": n, "device": "name", "key": ...}')
    keys = data.get("keys") or ([data["key"]] if "key" in data else None)
    if keys is not None and not isinstance(keys, list):
        raise InvalidInput('"keys" of an attribute request is a list of names')
    return data.get("device"), [str(k) for k in keys] if keys else None, bool(data.get("client"))


def attribute_response(
    data: dict[str, Any], name: str, answer: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The answer to an attribute request: ``"value"`` for one ``"key"``, else ``"values"``."""
    found = answer["client" if data.get("client") else "shared"]
    body: dict[str, Any] = {"id": data["id"], "device": name}
    if "key" in data and not data.get("keys"):
        body["value"] = found.get(str(data["key"]))
    else:
        body["values"] = found
    return body


def rpc_reply(data: Any) -> tuple[Any, int, dict[str, Any]]:
    """``(device name, request id, response)`` of ``{"device": "name", "id": n, "data": {}}``."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
        raise InvalidInput('gateway RPC reply needs {"device": "name", "id": n, "data": {}}')
    request_id = data.get("id", data["data"].get("id"))
    if not isinstance(request_id, int) or isinstance(request_id, bool):
        raise InvalidInput("gateway RPC reply needs an integer id")
    return data.get("device"), request_id, data["data"]


def command(name: str, request_id: int, method: str, params: Any) -> dict[str, Any]:
    """A command to a gateway's sub-device, as ThingsBoard's gateway receives it."""
    return {"device": name, "data": {"id": request_id, "method": method, "params": params}}
