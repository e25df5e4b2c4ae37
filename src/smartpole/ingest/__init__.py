"""Ingest: decode device payloads, validate against the catalog, batch into the store."""

from smartpole.ingest.payload import parse_attributes, parse_telemetry, to_batch
from smartpole.ingest.pipeline import Pipeline

__all__ = ["Pipeline", "parse_attributes", "parse_telemetry", "to_batch"]
