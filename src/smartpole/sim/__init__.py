"""The fleet simulator: virtual districts of smart poles."""
