"""Live push: the one broadcaster that emits to Socket.IO. The namespace browsers join
(login, rooms, resync) is the web layer's: roadwatch/web/live.py."""
