"""Work orders: their lifecycle and SLA (``lifecycle``), the store of orders and maintenance
teams (``store``) and their tables (``tables``)."""
