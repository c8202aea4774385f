"""Recurrence analytics, forecasts and patrol plans from the findings' history (issue 22).

Web-free: plain data in (findings, segments, chiefs), numpy out. `history` buckets findings
into weeks × segments × hour-of-week windows, `hotspots` ranks segments with an
empirical-Bayes Poisson-gamma posterior, `forecast` is a Poisson regression fitted by IRLS,
`plans` turns forecasts into patrol timetables, `synth` generates histories with planted
hot spots for tests and benchmarks.
"""
