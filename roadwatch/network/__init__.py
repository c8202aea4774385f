"""The road network as the platform runs it: the loaded network and its indexes, sync into the database, responsibility history."""
