"""Case workflow: working-time calendar, time limits (SLA) and escalation."""
