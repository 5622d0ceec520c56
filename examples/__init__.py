"""Examples of using cpa-planner from the outside (run them as scripts: see each docstring)."""
