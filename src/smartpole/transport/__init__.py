"""Device-facing protocols: decode, encode, authenticate; nothing about storage."""
