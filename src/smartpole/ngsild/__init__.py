"""NGSI-LD open data: the standard's API over smartpole's registry and store."""
