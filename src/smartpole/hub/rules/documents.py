"""Rule documents: one rule or a list of them, written as YAML or JSON (the REST API's bodies,
the command line's files, the default rule set shipped as ``defaults.yaml``)."""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import Any

import orjson
import yaml

from smartpole.errors import InvalidInput

__all__ = ["check_each", "default_rules", "parse_rules_text", "rules_in"]


def parse_rules_text(text: bytes, content_type: str) -> Any:
    """A JSON or YAML document (YAML when the content type says so), or InvalidInput."""
    try:
        if "yaml" in content_type:
            return yaml.safe_load(text)
        return orjson.loads(text)
    except (yaml.YAMLError, orjson.JSONDecodeError) as err:
        raise InvalidInput(f"the body is not valid {content_type or 'JSON'}: {err}") from err


def rules_in(doc: Any) -> list[Any]:
    """The rule bodies of a document: a list, or an object with a ``rules`` list."""
    items = doc.get("rules") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise InvalidInput("expected a list of rules, or an object with a 'rules' list")
    return items


def check_each(items: list[Any], check: Callable[[Any], object]) -> list[dict[str, Any]]:
    """Check every rule body; the problems of all of them, each located by the rule's
    position in the list first (``[2, "condition", "op"]``)."""
    errors: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        try:
            check(item)
        except InvalidInput as err:
            errors.extend({"loc": [i, *e["loc"]], "msg": e["msg"]} for e in err.errors)
    return errors


def default_rules() -> list[dict[str, Any]]:
    """The default rule set shipped with smartpole (``defaults.yaml``)."""
    text = (files("smartpole.hub.rules") / "defaults.yaml").read_text(encoding="utf-8")
    return list(yaml.safe_load(text)["rules"])
