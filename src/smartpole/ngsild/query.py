"""The NGSI-LD query language (``q``, ETSI GS CIM 009 clause 4.9), ``scopeQ`` (4.19) and the
entity type selection (``type``, 4.17).

``speed>50;brand=="Mercedes"|(seats==2..4)``: ``;`` is AND (binding tighter), ``|`` is OR,
parentheses group. A term names an attribute, a sub-attribute (``speed.accuracy``), a member of a
structured value (``address[city]``) or a system member (``speed.observedAt``), then an operator
(``== != > >= < <= =~ !~=``) and a value: a number, a quoted string, ``true``/``false``, a
DateTime, a list (``a==1,2,3``) or a range (``a==1..5``). A bare name asks that the attribute
exist, ``!name`` that it not. Names are expanded with the caller's ``@context`` once, at parse.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from smartpole.ngsild.context import Context
from smartpole.ngsild.entities import Attribute, Entity, parse_time
from smartpole.ngsild.errors import NgsiLdError
from smartpole.ngsild.patterns import caller_pattern

__all__ = [
    "Predicate",
    "TypeSelection",
    "parse_projection",
    "parse_q",
    "parse_scope_q",
    "parse_type_selection",
]

Predicate = Callable[[Entity], bool]
MAX_Q = 4096
MAX_NESTING = 32
_OPERATORS = ("!~=", "==", "!=", ">=", "<=", "=~", ">", "<")
_SYSTEM = {"observedAt", "createdAt", "modifiedAt", "unitCode", "datasetId"}
_TOKEN = re.compile(
    r"""\s*(?:(?P<op>!~=|==|!=|>=|<=|=~|>|<)|(?P<logic>[;|()!])|(?P<str>"(?:[^"\\]|\\.)*")"""
    r"""|(?P<word>[^\s;|()!<>=~"]+))"""
)


@dataclass(frozen=True, slots=True)
class _Path:
    attribute: str  # expanded
    sub: tuple[str, ...]  # expanded sub-attribute names
    member: tuple[str, ...]  # keys inside the value ([..])
    system: str | None  # observedAt, createdAt, ...


def _split_name(text: str, ctx: Context) -> _Path:
    member: list[str] = []
    base = text
    if "[" in text:
        base, rest = text.split("[", 1)
        for piece in ("[" + rest).split("["):
            if not piece:
                continue
            if not piece.endswith("]"):
                raise NgsiLdError.bad_data(f"q: unbalanced brackets in {text!r}")
            member.extend(piece[:-1].split("."))
    parts = base.split(".") if "://" not in base else [base]
    if not parts[0]:
        raise NgsiLdError.bad_data(f"q: {text!r} names no attribute")
    system = parts[-1] if len(parts) > 1 and parts[-1] in _SYSTEM else None
    subs = parts[1:-1] if system else parts[1:]
    return _Path(ctx.expand(parts[0]), tuple(ctx.expand(s) for s in subs), tuple(member), system)


def _values(path: _Path, entity: Entity) -> list[Any]:
    out: list[Any] = []
    for instance in entity.attrs.get(path.attribute, ()):
        target: Attribute | None = instance
        for sub in path.sub:
            target = target.sub.get(sub) if target is not None else None
        if target is None:
            continue
        if path.system is not None:
            value: Any = {
                "observedAt": target.observed_at,
                "createdAt": target.created_at,
                "modifiedAt": target.modified_at,
                "unitCode": target.unit_code,
                "datasetId": target.dataset_id,
            }[path.system]
        else:
            value = target.value
        for key in path.member:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            out.append(value)
    return out


def _literal(text: str, path: _Path) -> Any:
    if text.startswith('"'):
        try:
            value: Any = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise NgsiLdError.bad_data(f"q: bad string {text}") from None
    elif text in ("true", "false"):
        value = text == "true"
    else:
        try:
            value = float(text) if any(c in text for c in ".eE") else int(text)
        except ValueError:
            if re.match(r"^\d{4}-\d{2}-\d{2}", text):
                value = text  # a DateTime or Date, compared as text (ISO 8601 sorts)
            elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", text):
                value = text  # a URI (a relationship's object)
            else:
                raise NgsiLdError.bad_data(f"q: {text!r} is not a value") from None
    if path.system in ("observedAt", "createdAt", "modifiedAt") and isinstance(value, str):
        return parse_time(value, "q")
    return value


def _comparable(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return True
    return isinstance(a, str) and isinstance(b, str)


def _compare(op: str, target: Any, ref: Any) -> bool:
    if isinstance(target, list):
        return any(_compare(op, item, ref) for item in target)
    if op in ("=~", "!~="):
        found = isinstance(target, str) and ref.search(target) is not None
        return found if op == "=~" else not found
    if isinstance(ref, tuple):  # a range
        low, high = ref
        return _comparable(target, low) and _comparable(target, high) and low <= target <= high
    if isinstance(ref, list):  # a list of values: any of them
        hit = any(_comparable(target, r) and target == r for r in ref)
        return hit if op == "==" else not hit
    if not _comparable(target, ref):
        return op == "!="
    if op == "==":
        return bool(target == ref)
    if op == "!=":
        return bool(target != ref)
    if op == ">":
        return bool(target > ref)
    if op == ">=":
        return bool(target >= ref)
    if op == "<":
        return bool(target < ref)
    return bool(target <= ref)


class _Parser:
    def __init__(self, text: str, ctx: Context) -> None:
        self.tokens: list[tuple[str, str]] = []
        self.ctx = ctx
        pos = 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                if text[pos:].strip() == "":
                    break
                raise NgsiLdError.bad_data(f"q: cannot read {text[pos : pos + 20]!r}")
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind)))
            pos = match.end()
        self.at = 0
        self.depth = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise NgsiLdError.bad_data("q ends too early")
        self.at += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.disjunction()
        if self.peek() is not None:
            raise NgsiLdError.bad_data(f"q: unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return predicate

    def disjunction(self) -> Predicate:
        terms = [self.conjunction()]
        while self.peek() == ("logic", "|"):
            self.take()
            terms.append(self.conjunction())
        if len(terms) == 1:
            return terms[0]
        return lambda e: any(t(e) for t in terms)

    def conjunction(self) -> Predicate:
        terms = [self.factor()]
        while self.peek() == ("logic", ";"):
            self.take()
            terms.append(self.factor())
        if len(terms) == 1:
            return terms[0]
        return lambda e: all(t(e) for t in terms)

    def factor(self) -> Predicate:
        kind, text = self.take()
        if (kind, text) == ("logic", "("):
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise NgsiLdError.bad_data(f"q nests parentheses deeper than {MAX_NESTING}")
            inner = self.disjunction()
            if self.take() != ("logic", ")"):
                raise NgsiLdError.bad_data("q: a '(' is not closed")
            self.depth -= 1
            return inner
        if (kind, text) == ("logic", "!"):
            kind, text = self.take()
            if kind != "word":
                raise NgsiLdError.bad_data("q: '!' must be followed by an attribute name")
            path = _split_name(text, self.ctx)
            return lambda e: not _values(path, e)
        if kind != "word":
            raise NgsiLdError.bad_data(f"q: expected an attribute name, not {text!r}")
        path = _split_name(text, self.ctx)
        following = self.peek()
        if following is None or following[0] != "op":
            return lambda e: bool(_values(path, e))
        op = self.take()[1]
        ref = self.value(op, path)
        return lambda e: any(_compare(op, v, ref) for v in _values(path, e))

    def value(self, op: str, path: _Path) -> Any:
        kind, text = self.take()
        if kind not in ("word", "str"):
            raise NgsiLdError.bad_data(f"q: {op} must be followed by a value")
        if op in ("=~", "!~="):
            try:
                pattern = orjson.loads(text) if kind == "str" else text
            except orjson.JSONDecodeError:
                raise NgsiLdError.bad_data(f"q: bad pattern {text}") from None
            return caller_pattern(pattern, "q")
        # A list or a range is one token unless it holds quoted strings: join what follows.
        while self.peek() is not None and self.peek()[0] in ("str", "word"):  # type: ignore[index]
            nxt = self.take()[1]
            if not (text.endswith((",", "..")) or nxt.startswith(",")):
                raise NgsiLdError.bad_data(f"q: unexpected {nxt!r} after {text!r}")
            text += nxt
        if ".." in text and not text.startswith('"') and op in ("==", "!="):
            low, _, high = text.partition("..")
            return (_literal(low, path), _literal(high, path))
        items = _split_list(text)
        if len(items) > 1:
            if op not in ("==", "!="):
                raise NgsiLdError.bad_data(f"q: a list of values needs == or !=, not {op}")
            return [_literal(i, path) for i in items]
        if text.startswith("[") and op in ("==", "!="):
            try:
                parsed = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise NgsiLdError.bad_data(f"q: bad list {text}") from None
            return list(parsed) if isinstance(parsed, list) else parsed
        return _literal(text, path)


def _split_list(text: str) -> list[str]:
    items: list[str] = []
    current = ""
    quoted = False
    for ch in text:
        if ch == '"' and not current.endswith("\\"):
            quoted = not quoted
        if ch == "," and not quoted:
            items.append(current)
            current = ""
        else:
            current += ch
    items.append(current)
    return [i for i in items if i != ""]


def parse_q(text: str, ctx: Context) -> Predicate:
    """A ``q`` query as a predicate over entities."""
    if len(text) > MAX_Q:
        raise NgsiLdError.bad_data(f"q is longer than {MAX_Q} characters")
    if not text.strip():
        raise NgsiLdError.bad_data("q is empty")
    return _Parser(text, ctx).parse()


def parse_scope_q(text: str) -> Predicate:
    """A ``scopeQ`` (``/Madrid/#``, ``/A;/B``, ``/A|/B`` or ``/A,/B``, ``/Madrid/+/x``) as a
    predicate."""
    if not text.strip():
        raise NgsiLdError.bad_data("scopeQ is empty")
    alternatives = []
    for alternative in re.split(r"[|,]", text):
        required = []
        for scope in alternative.split(";"):
            scope = scope.strip().strip("()")
            if not scope.startswith("/"):
                raise NgsiLdError.bad_data(f"scopeQ: {scope!r} is not a scope path")
            required.append(_scope_pattern(scope))
        alternatives.append(required)

    def matches(entity: Entity) -> bool:
        scopes = entity.scopes or []
        return any(
            all(any(p.fullmatch(s) for s in scopes) for p in required) for required in alternatives
        )

    return matches


def _scope_pattern(scope: str) -> re.Pattern[str]:
    if scope == "/#":
        return re.compile(r"/.*")
    parts = []
    for part in scope.strip("/").split("/"):
        if part == "+":
            parts.append("[^/]+")
        elif part == "#":
            parts.append(".*")
        else:
            parts.append(re.escape(part))
    pattern = "/" + "/".join(parts)
    return re.compile(pattern.replace("/.*", "(/.*)?"))


@dataclass(frozen=True, slots=True)
class TypeSelection:
    """A ``type`` parameter: every type it names (an entity that matches has one of them, so a
    store may narrow by these first) and the exact selection, as a predicate."""

    names: list[str]
    matches: Predicate


_TYPE_TOKEN = re.compile(r"\s*([(),|;]|[^(),|;\s]+)")


def parse_type_selection(text: str, ctx: Context) -> TypeSelection:
    """``Building``, ``Car,Truck`` or ``Car|Truck`` (either), ``Home;Building`` (both, on a
    multi-typed entity), with parentheses: ``(Home;Building),Car``. ``;`` binds tighter."""
    if len(text) > MAX_Q:
        raise NgsiLdError.bad_data(f"type is longer than {MAX_Q} characters")
    tokens = [m.group(1) for m in _TYPE_TOKEN.finditer(text) if m.group(1)]
    if not tokens:
        raise NgsiLdError.bad_data("type is empty")
    names: list[str] = []
    at = 0

    def peek() -> str | None:
        return tokens[at] if at < len(tokens) else None

    def either(depth: int) -> Callable[[set[str]], bool]:
        nonlocal at
        options = [both(depth)]
        while peek() in (",", "|"):
            at += 1
            options.append(both(depth))
        return lambda types: any(o(types) for o in options)

    def both(depth: int) -> Callable[[set[str]], bool]:
        nonlocal at
        required = [one(depth)]
        while peek() == ";":
            at += 1
            required.append(one(depth))
        return lambda types: all(r(types) for r in required)

    def one(depth: int) -> Callable[[set[str]], bool]:
        nonlocal at
        word = peek()
        if word is None or word in ",|;)":
            raise NgsiLdError.bad_data(f"type: a type name is missing in {text!r}")
        at += 1
        if word == "(":
            if depth >= MAX_NESTING:
                raise NgsiLdError.bad_data(f"type: parentheses nested past {MAX_NESTING}")
            inner = either(depth + 1)
            if peek() != ")":
                raise NgsiLdError.bad_data(f"type: a parenthesis is not closed in {text!r}")
            at += 1
            return inner
        if _FORBIDDEN_TYPE.search(word):
            raise NgsiLdError.bad_data(f"type: {word!r} is not a type name")
        iri = ctx.expand(word)
        names.append(iri)
        return lambda types: iri in types

    selection = either(0)
    if peek() is not None:
        raise NgsiLdError.bad_data(f"type: unexpected {peek()!r} in {text!r}")
    return TypeSelection(list(dict.fromkeys(names)), lambda entity: selection(set(entity.types)))


_FORBIDDEN_TYPE = re.compile(r"[<>\"'=]")


_PROJECTION_TOKEN = re.compile(r"[{},]|[^{},]+")
_PROJECTED_NAME = re.compile(r"[A-Za-z_@][^\s{},;()<>\"'=]*")


def parse_projection(text: str, what: str) -> tuple[str, ...]:
    """A ``pick`` or ``omit`` (clause 4.21): members (``id``, ``type``, attribute names),
    comma-separated, each optionally followed by ``{…}``, the same for the entities it links
    to; the top-level names are returned (linked entities are not joined)."""
    if len(text) > MAX_Q:
        raise NgsiLdError.bad_data(f"{what} is longer than {MAX_Q} characters")
    tokens = _PROJECTION_TOKEN.findall(text)
    top: list[str] = []
    depth = 0
    expect_name = True
    for piece in tokens:
        if piece == "{":
            if expect_name:
                raise NgsiLdError.bad_data(f"{what}: a brace must follow a name in {text!r}")
            depth += 1
            if depth > MAX_NESTING:
                raise NgsiLdError.bad_data(f"{what}: braces nested past {MAX_NESTING}")
            expect_name = True
        elif piece == "}":
            if expect_name or depth == 0:
                raise NgsiLdError.bad_data(f"{what}: a brace is empty or unopened in {text!r}")
            depth -= 1
        elif piece == ",":
            if expect_name:
                raise NgsiLdError.bad_data(f"{what}: a name is missing in {text!r}")
            expect_name = True
        else:
            name = piece.strip()
            if not expect_name or not _PROJECTED_NAME.fullmatch(name):
                raise NgsiLdError.bad_data(f"{what}: {name!r} is not a member name")
            if depth == 0:
                top.append(name)
            expect_name = False
    if depth or expect_name:
        raise NgsiLdError.bad_data(f"{what}: {text!r} ends before it is complete")
    return tuple(top)
