"""Events: the structured log, its live stream, alerts, the audit trail and utilization."""
