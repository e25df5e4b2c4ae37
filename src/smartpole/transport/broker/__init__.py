"""Broker mode: smartpole nodes behind an external MQTT 5 broker (Mosquitto, EMQX).

``consumer`` takes the devices' messages from the broker and is the command channel;
``topics`` holds the topic scheme and its access rules; ``mosquitto`` writes Mosquitto's
password and ACL files from the registry. See ``docs/brokers.md``.
"""

from __future__ import annotations

from smartpole.transport.broker.consumer import BrokerConsumer, BrokerStats, BrokerUrl

__all__ = ["BrokerConsumer", "BrokerStats", "BrokerUrl"]
