"""Street lighting: the nights of a position, programs resolved on them, calendars and
holidays, the plans compiled for every lamp, and the lamps' energy and savings."""
