"""The command centre's map data: vector tiles of the network and the city's offline basemap."""
