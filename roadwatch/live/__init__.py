"""Live push: the one broadcaster that emits to Socket.IO (the namespace browsers join is roadwatch/web/live.py)."""
