"""Documents written as JSON or YAML (rules, lighting programs and calendars): parsing them, and
giving each problem found in one the line of the YAML it points at."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import yaml

from smartpole.errors import InvalidInput

__all__ = ["is_yaml", "locate_lines", "parse_document"]


def is_yaml(content_type: str) -> bool:
    """Whether a content type names YAML (``application/yaml``, ``text/yaml``, ...)."""
    return "yaml" in content_type


def parse_document(text: bytes, content_type: str) -> Any:
    """A JSON or YAML document (YAML when the content type says so), or InvalidInput; a YAML
    syntax error is located at its line (``errors[0].line``, from 1)."""
    try:
        if is_yaml(content_type):
            return yaml.safe_load(text)
        return orjson.loads(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = [{"loc": [], "msg": str(err.problem or err), "line": mark.line + 1}] if mark else []
        raise InvalidInput(f"the body is not valid YAML: {err}", errors=line) from err
    except (yaml.YAMLError, orjson.JSONDecodeError) as err:
        raise InvalidInput(f"the body is not valid {content_type or 'JSON'}: {err}") from err
    except (ValueError, TypeError) as err:
        # YAML's own dates and times are built while loading: 2026-02-30 fails there
        raise InvalidInput(f"the body holds an impossible value: {err}") from err


def _line_of(node: yaml.Node | None, loc: Sequence[Any]) -> int | None:
    """The line (from 1) of the deepest node of a composed YAML document that ``loc`` reaches:
    a mapping entry's key, a list's item."""
    line = None if node is None else node.start_mark.line + 1
    for step in loc:
        if isinstance(node, yaml.MappingNode):
            entry = next((kv for kv in node.value if kv[0].value == step), None)
            if entry is None:
                break
            line, node = entry[0].start_mark.line + 1, entry[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if not 0 <= step < len(node.value):
                break
            node = node.value[step]
            line = node.start_mark.line + 1
        else:
            break
    return line


def locate_lines(err: InvalidInput, text: bytes, prefix: Sequence[Any] = ()) -> None:
    """Give each of a YAML body's problems the line its location points at (``line``);
    ``prefix`` leads from the document to what the locations start from (``["rules"]``)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return
    for problem in err.errors:
        line = _line_of(root, [*prefix, *problem.get("loc", [])])
        if line is not None:
            problem.setdefault("line", line)
