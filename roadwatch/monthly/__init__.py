"""The monthly review pack (月讲评, issue 22): figures per district and city-wide, trends,
best and worst segments, charts, PDF and XLSX; frozen and hash-chained once published with
the weekly rankings' canonical JSON and chain (roadwatch.ranking.publish)."""
