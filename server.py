"""cpa-planner HTTP API (SPEC §5)."""
