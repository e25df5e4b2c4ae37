"""Rule documents: one rule or a list of them, written as YAML or JSON (the REST API's bodies,
the command line's files, the default rule set shipped as ``defaults.yaml``)."""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import Any

import yaml

from smartpole.errors import InvalidInput

__all__ = [
    "check_each",
    "default_rules",
    "rules_in",
    "rules_yaml",
]


def rules_yaml(body: dict[str, Any]) -> str:
    """A rule body written as YAML, keys in the order they were written."""
    return str(yaml.safe_dump(body, sort_keys=False, allow_unicode=True))


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
