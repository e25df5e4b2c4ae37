"""The registry: tenants, API keys, poles, devices, attributes, inventory and geo queries."""
