"""MQTT 3.1.1 and 5.0 device transport: packet codec and broker."""
