"""Lighting control's domain core: the nights of a position, programs resolved on them,
calendars and holidays, and the plans compiled for every lamp (no storage, no transport)."""
