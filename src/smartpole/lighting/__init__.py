"""Street lighting: programs, plans, diagnostics, energy."""
