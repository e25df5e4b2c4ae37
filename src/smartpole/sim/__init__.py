"""The fleet simulator: virtual districts of smart poles."""

__all__ = ["FLEET_FILE"]

# The fleet file's name in the data dir (see ``smartpole.sim.fleet``); here, so that the
# command line names it without loading the simulator.
FLEET_FILE = "sim-fleet.json"
