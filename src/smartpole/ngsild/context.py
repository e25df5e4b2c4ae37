"""JSON-LD ``@context``: which IRI a short name stands for, and back.

NGSI-LD names every entity type and attribute by an IRI; a caller writes short terms and says
what they mean with a ``@context`` (in the body of ``application/ld+json``, or in a ``Link``
header). The broker keeps the IRIs and answers in the caller's terms.

* The core context (ETSI GS CIM 009, annex B) ships in the package and is never fetched; any of
  its published URLs names it. Its terms always win over a caller's (it is ``@protected``).
* smartpole's own context (the Smart Data Models terms of what it publishes, built from
  :mod:`smartpole.ngsild.models`) is served at
  ``/ngsi-ld/v1/jsonldContexts/smartpole-context.jsonld``.
* ``ngsi_ld_contexts`` names a JSON file mapping context URLs to local files: those are read from
  disk, never fetched (air-gapped sites).
* Any other URL is fetched once and cached, only when ``ngsi_ld_offline`` is off and its host is
  listed in ``ngsi_ld_context_hosts`` (``*``: any); else the caller gets the standard's
  ``LdContextNotAvailable``.

Only what NGSI-LD uses of JSON-LD is implemented: term definitions (a string, or an object
with ``@id``, ``@type`` and ``@container``), compact IRIs (``sdm:name``), ``@vocab``, nested
lists of contexts. Values are not expanded, except that a term coerced to ``@vocab``
(``VocabProperty``) is not special-cased either: NGSI-LD brokers keep values as they come.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from smartpole.ngsild.errors import NgsiLdError, ProblemType
from smartpole.ngsild.models import context_document
from smartpole.outbound import http_client

__all__ = [
    "CORE",
    "CORE_URL",
    "LINK_REL",
    "Context",
    "ContextLoader",
    "Fetch",
    "core_document",
    "fetch_over_http",
    "own_document",
]

log = logging.getLogger(__name__)

CORE_URL = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"  # the embedded
# Every published URL of the core context (v1.0 to v1.9), all answered by the embedded one.
_CORE_URL_RE = re.compile(
    r"^https?://uri\.etsi\.org/ngsi-ld/v1/ngsi-ld-core-context(-v1\.\d+)?\.jsonld$"
)
LINK_REL = "http://www.w3.org/ns/json-ld#context"
OWN_PATH = "/ngsi-ld/v1/jsonldContexts/"
MAX_DOCUMENT = 1 << 20  # bytes of a fetched context
MAX_DEPTH = 8  # contexts that name contexts
_CACHED = 512

Fetch = Callable[[str], Awaitable[bytes]]
"""Fetches a URL's body (raises on any failure); given by the composition root."""


async def fetch_over_http(url: str) -> bytes:
    """A context document over HTTP(S): no redirects, 5 s, at most :data:`MAX_DOCUMENT` bytes
    read (a longer one is cut, and refused by the caller)."""
    accept = "application/ld+json, application/json;q=0.9"
    async with (
        http_client(5.0) as client,
        client.stream("GET", url, headers={"Accept": accept}) as response,
    ):
        response.raise_for_status()
        body = b""
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_DOCUMENT:
                break
        return body


def _load(name: str) -> dict[str, Any]:
    raw = resources.files("smartpole.ngsild").joinpath("contexts", name).read_bytes()
    document: dict[str, Any] = orjson.loads(raw)
    return document


_CORE = _load("ngsi-ld-core-context.jsonld")
# The core context is applied last and wins: a name it defines (``status``, ``description``)
# means its IRI in every reader's context, so smartpole publishes such names under it and
# leaves them out of its own context (where they could only mislead).
_OWN = {
    "smartpole-context.jsonld": {
        "@context": {
            name: iri
            for name, iri in context_document()["@context"].items()
            if name not in _CORE["@context"]
        }
    }
}


def core_document() -> dict[str, Any]:
    """The core context document, as served."""
    return _CORE


def own_document(name: str) -> dict[str, Any] | None:
    """One of smartpole's own context documents, or None."""
    return _OWN.get(name)


@dataclass(frozen=True, slots=True)
class Term:
    """A term's definition: its IRI, the type its values are coerced to, its container."""

    iri: str
    coerce: str | None = None
    container: str | None = None


class _Definitions:
    """Raw term definitions of one context level, resolved on demand (prefixes may be defined
    after the terms that use them)."""

    def __init__(self, raw: Mapping[str, Any], inherited: Mapping[str, Term], vocab: str) -> None:
        self.raw = raw
        self.inherited = inherited
        self.vocab = vocab
        self.done: dict[str, Term | None] = {}

    def resolve(self, name: str, depth: int = 0) -> Term | None:
        if name in self.done:
            return self.done[name]
        if depth > 16:
            raise NgsiLdError.bad_data(f"@context term {name!r} is defined in a loop")
        spec = self.raw[name]
        if spec is None:
            self.done[name] = None
            return None
        if isinstance(spec, str):
            term = Term(self._iri(spec, depth))
        elif isinstance(spec, dict):
            iri = spec.get("@id", name)
            if not isinstance(iri, str):
                raise NgsiLdError.bad_data(f"@context term {name!r} has an @id that is no string")
            coerce = spec.get("@type")
            container = spec.get("@container")
            term = Term(
                self._iri(iri, depth),
                coerce if isinstance(coerce, str) else None,
                container if isinstance(container, str) else None,
            )
        else:
            raise NgsiLdError.bad_data(f"@context term {name!r} is neither a string nor an object")
        self.done[name] = term
        return term

    def _iri(self, value: str, depth: int) -> str:
        if value.startswith("@"):
            return value
        if ":" in value:
            prefix, rest = value.split(":", 1)
            if rest.startswith("//"):
                return value
            if prefix in self.raw and prefix != value:
                base = self.resolve(prefix, depth + 1)
                if base is not None:
                    return base.iri + rest
            known = self.inherited.get(prefix)
            return known.iri + rest if known is not None else value
        if value in self.raw and self.raw[value] != value:
            term = self.resolve(value, depth + 1)
            if term is not None:
                return term.iri
        return self.vocab + value


class Context:
    """An active context: the caller's terms with the core context's over them.

    ``expand`` and ``compact`` remember their answers: a context is cached by what the caller
    sent, so the same few terms are looked up once per context, not once per entity.
    """

    def __init__(self, terms: Mapping[str, Term], vocab: str, sent: Any) -> None:
        self.terms = dict(terms)
        self.vocab = vocab
        self.sent = sent  # what to give back as "@context" (None: the core context alone)
        self._expanded: dict[str, str] = {}
        self._compacted: dict[str, str] = {}
        reverse: dict[str, str] = {}
        prefixes: list[tuple[str, str]] = []
        for name, term in self.terms.items():
            if term.iri.startswith("@"):
                continue
            best = reverse.get(term.iri)
            if best is None or (len(name), name) < (len(best), best):
                reverse[term.iri] = name
            if term.iri.endswith(("/", "#", ":")) and ":" not in name:
                prefixes.append((name, term.iri))
        self._reverse = reverse
        self._prefixes = sorted(prefixes, key=lambda p: -len(p[1]))

    @property
    def link(self) -> str:
        """The context URL to name in a ``Link`` header: the caller's single URL, else core."""
        return self.sent if isinstance(self.sent, str) else CORE_URL

    def body_context(self) -> Any:
        """The ``@context`` member of an ``application/ld+json`` answer: the caller's (as an
        array, as the conformance suite expects), else the core context."""
        if self.sent is None:
            return [CORE_URL]
        return self.sent if isinstance(self.sent, list | dict) else [self.sent]

    def term(self, name: str) -> Term | None:
        """The definition of a term (caller's or core), or None."""
        return self.terms.get(name)

    def expand(self, name: str) -> str:
        """The IRI a type or attribute name stands for."""
        iri = self._expanded.get(name)
        if iri is None:
            iri = self._expand(name)
            if len(self._expanded) < 10_000:
                self._expanded[name] = iri
        return iri

    def _expand(self, name: str) -> str:
        term = self.terms.get(name)
        if term is not None:
            return term.iri
        if ":" in name:
            prefix, rest = name.split(":", 1)
            if rest.startswith("//"):
                return name
            base = self.terms.get(prefix)
            return base.iri + rest if base is not None else name
        return self.vocab + name

    def compact(self, iri: str) -> str:
        """The shortest name of an IRI in this context (the IRI itself when none fits)."""
        name = self._compacted.get(iri)
        if name is None:
            name = self._compact(iri)
            if len(self._compacted) < 10_000:
                self._compacted[iri] = name
        return name

    def _compact(self, iri: str) -> str:
        term = self._reverse.get(iri)
        if term is not None:
            return term
        if iri.startswith(self.vocab):
            rest = iri[len(self.vocab) :]
            if rest and ":" not in rest and rest not in self.terms:
                return rest
        for prefix, base in self._prefixes:
            if iri.startswith(base) and len(iri) > len(base):
                return f"{prefix}:{iri[len(base) :]}"
        return iri


def _core_terms() -> tuple[dict[str, Term], str]:
    raw = _CORE["@context"]
    vocab = raw["@vocab"]
    level = _Definitions({k: v for k, v in raw.items() if not k.startswith("@")}, {}, vocab)
    terms = {name: level.resolve(name) for name in level.raw}
    return {k: v for k, v in terms.items() if v is not None}, vocab


CORE_TERMS, CORE_VOCAB = _core_terms()
CORE = Context(CORE_TERMS, CORE_VOCAB, None)


class ContextLoader:
    """Turns what a caller sent as ``@context`` into an active :class:`Context`, fetching and
    caching remote documents as the settings allow."""

    def __init__(
        self,
        *,
        preloaded: Mapping[str, Path] | None = None,
        hosts: frozenset[str] = frozenset(),
        offline: bool = True,
        fetch: Fetch | None = None,
    ) -> None:
        self.preloaded = dict(preloaded or {})
        self.hosts = hosts
        self.offline = offline
        self.fetch = fetch
        self._documents: OrderedDict[str, Any] = OrderedDict()
        self._contexts: OrderedDict[bytes, Context] = OrderedDict()

    @classmethod
    def from_file(cls, path: Path | None, **kwargs: Any) -> ContextLoader:
        """A loader whose preloaded contexts are listed in ``path`` (JSON: URL -> file, relative
        to the listing file), as the setting ``ngsi_ld_contexts`` names it."""
        preloaded: dict[str, Path] = {}
        if path is not None:
            listing = orjson.loads(path.read_bytes())
            if not isinstance(listing, dict):
                raise ValueError(f"{path}: expected an object mapping context URLs to files")
            for url, file in listing.items():
                local = (path.parent / str(file)).resolve()
                if not local.is_file():
                    raise ValueError(f"{path}: {url} names {local}, which is not a file")
                preloaded[str(url)] = local
        return cls(preloaded=preloaded, **kwargs)

    async def active(self, sent: Any) -> Context:
        """The active context for what a caller sent (None: the core context alone)."""
        if sent is None or (isinstance(sent, str) and _CORE_URL_RE.match(sent)):
            return CORE if sent is None else Context(CORE_TERMS, CORE_VOCAB, sent)
        key = orjson.dumps(sent, option=orjson.OPT_SORT_KEYS)
        cached = self._contexts.get(key)
        if cached is not None:
            self._contexts.move_to_end(key)
            return cached
        terms: dict[str, Term] = {}
        vocab = CORE_VOCAB
        vocab = await self._apply(sent, terms, vocab, 0)
        terms.update(CORE_TERMS)  # the core context is protected: its terms always win
        context = Context(terms, vocab, sent)
        self._contexts[key] = context
        if len(self._contexts) > _CACHED:
            self._contexts.popitem(last=False)
        return context

    async def _apply(self, sent: Any, terms: dict[str, Term], vocab: str, depth: int) -> str:
        if depth > MAX_DEPTH:
            raise NgsiLdError.bad_data("@context nests other contexts too deeply")
        if isinstance(sent, list):
            for item in sent:
                vocab = await self._apply(item, terms, vocab, depth + 1)
            return vocab
        if isinstance(sent, str):
            if _CORE_URL_RE.match(sent):
                return vocab
            document = await self.document(sent)
            inner = document.get("@context") if isinstance(document, dict) else None
            if inner is None:
                raise NgsiLdError.bad_data(f"the @context at {sent} has no @context member")
            return await self._apply(inner, terms, vocab, depth + 1)
        if isinstance(sent, dict):
            if "@vocab" in sent and isinstance(sent["@vocab"], str):
                vocab = sent["@vocab"]
            raw = {k: v for k, v in sent.items() if not k.startswith("@")}
            level = _Definitions(raw, terms, vocab)
            for name in raw:
                term = level.resolve(name)
                if term is None:
                    terms.pop(name, None)
                elif not term.iri.startswith("@"):
                    terms[name] = term
            return vocab
        if sent is None:
            return vocab
        raise NgsiLdError.bad_data("@context must be a URL, an object or a list of them")

    async def document(self, url: str) -> Any:
        """The JSON of a context document: shipped, preloaded, or fetched once and cached."""
        if _CORE_URL_RE.match(url):
            return _CORE
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
        except ValueError:
            raise NgsiLdError.bad_data(f"the @context {url!r} is not a URL") from None
        if parts.path.startswith(OWN_PATH) and parts.path[len(OWN_PATH) :] in _OWN:
            return _OWN[parts.path[len(OWN_PATH) :]]
        cached = self._documents.get(url)
        if cached is not None:
            return cached
        local = self.preloaded.get(url)
        if local is not None:
            body = local.read_bytes()
        else:
            body = await self._fetch(url, parts.scheme, host)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as err:
            raise NgsiLdError(
                ProblemType.LD_CONTEXT_NOT_AVAILABLE, f"the @context at {url} is not JSON"
            ) from err
        self._documents[url] = document
        if len(self._documents) > _CACHED:
            self._documents.popitem(last=False)
        return document

    async def _fetch(self, url: str, scheme: str, host: str) -> bytes:
        unavailable = ProblemType.LD_CONTEXT_NOT_AVAILABLE
        if scheme not in ("http", "https"):
            raise NgsiLdError(unavailable, f"the @context {url!r} is not an http(s) URL")
        if self.offline or self.fetch is None:
            raise NgsiLdError(
                unavailable,
                f"the @context {url} is not known here and this node does not fetch contexts "
                "(ngsi_ld_offline); preload it with ngsi_ld_contexts, or send it inline",
            )
        if "*" not in self.hosts and host not in self.hosts:
            raise NgsiLdError(
                unavailable, f"contexts are not fetched from {host} (ngsi_ld_context_hosts)"
            )
        try:
            body = await self.fetch(url)
        except Exception as err:  # any failure of the fetch: the caller's context is missing
            log.warning("NGSI-LD: could not fetch the @context %s: %s", url, err)
            raise NgsiLdError(unavailable, f"the @context {url} could not be fetched") from err
        if len(body) > MAX_DOCUMENT:
            raise NgsiLdError(unavailable, f"the @context {url} is larger than {MAX_DOCUMENT} B")
        log.info("NGSI-LD: fetched the @context %s (%d bytes); cached", url, len(body))
        return body
