"""The NGSI-LD standard's problem types (ETSI GS CIM 009, clause 5.5.2): one table.

An NGSI-LD route answers these as problem+json with the standard's ``type`` URI, so that any
NGSI-LD client can tell them apart; errors of the rest of smartpole (an unknown API key, a role
that may not write, a store that is down) keep their own problem answers.
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = ["ERRORS_BASE", "NgsiLdError", "ProblemType"]

ERRORS_BASE = "https://uri.etsi.org/ngsi-ld/errors/"


class ProblemType(enum.Enum):
    """A standard problem type and the HTTP status it is answered with."""

    INVALID_REQUEST = ("InvalidRequest", 400)
    BAD_REQUEST_DATA = ("BadRequestData", 400)
    ALREADY_EXISTS = ("AlreadyExists", 409)
    OPERATION_NOT_SUPPORTED = ("OperationNotSupported", 422)
    RESOURCE_NOT_FOUND = ("ResourceNotFound", 404)
    TOO_COMPLEX_QUERY = ("TooComplexQuery", 403)
    TOO_MANY_RESULTS = ("TooManyResults", 403)
    LD_CONTEXT_NOT_AVAILABLE = ("LdContextNotAvailable", 503)
    NONEXISTENT_TENANT = ("NonexistentTenant", 404)
    UNSUPPORTED_MEDIA_TYPE = ("InvalidRequest", 415)
    NOT_ACCEPTABLE = ("InvalidRequest", 406)

    @property
    def name_(self) -> str:
        """The standard's name of the type (``BadRequestData``)."""
        return str(self.value[0])

    @property
    def uri(self) -> str:
        """The problem's ``type`` member."""
        return ERRORS_BASE + self.name_

    @property
    def status(self) -> int:
        """The HTTP status it is answered with."""
        return int(self.value[1])


class NgsiLdError(Exception):
    """A request the NGSI-LD API refuses, with the standard's problem type."""

    def __init__(self, kind: ProblemType, detail: str, **fields: Any) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.fields = fields

    @classmethod
    def bad_data(cls, detail: str, **fields: Any) -> NgsiLdError:
        """The body or a parameter is well-formed but not valid NGSI-LD."""
        return cls(ProblemType.BAD_REQUEST_DATA, detail, **fields)

    @classmethod
    def invalid(cls, detail: str, **fields: Any) -> NgsiLdError:
        """The request itself is malformed (not JSON, a wrong header, a bad parameter)."""
        return cls(ProblemType.INVALID_REQUEST, detail, **fields)

    @classmethod
    def not_found(cls, detail: str, **fields: Any) -> NgsiLdError:
        """No such entity, attribute or subscription (or one the caller may not see)."""
        return cls(ProblemType.RESOURCE_NOT_FOUND, detail, **fields)

    @classmethod
    def exists(cls, detail: str, **fields: Any) -> NgsiLdError:
        """An entity or subscription of that id exists already."""
        return cls(ProblemType.ALREADY_EXISTS, detail, **fields)

    def body(self) -> dict[str, Any]:
        """The problem+json body."""
        return {
            **self.fields,
            "type": self.kind.uri,
            "title": self.kind.name_,
            "status": self.kind.status,
            "detail": self.detail,
        }
