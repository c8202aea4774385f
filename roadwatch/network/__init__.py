"""The road network as the platform runs it: the loaded network and its indexes, its sync
into the database, and the history of who answers for each segment."""
