"""Work orders: their lifecycle and SLA (``lifecycle``), the store of orders and maintenance
teams (``store``), their rows as values (``rows``) and their tables (``tables``)."""
