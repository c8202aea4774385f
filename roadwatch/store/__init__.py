"""Storage: models, engine, migrations, bulk writes, the event log, the segment read model,
the audit log and photos."""
