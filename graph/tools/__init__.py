"""The action catalogue: what the planner's executors can do, as tools (docs/tools.md).

- `catalogue`: the catalogue one planning call sees (executors and tools, by name);
- `executors`: the planner's own executors described as tools;
- `files`: catalogue files (YAML, JSON, TaskBench's `tool_desc.json`);
- `mcp`: MCP servers as sources, and calling their tools;
- `offers`: agents' offers, kept in Redis per tenant and agent;
- `sources`: where a tenant's catalogue comes from, merged;
- `narrowing`: a large catalogue narrowed to the tools closest to a request;
- `arguments`: a plan's tool calls checked against the catalogue (JSON Schema).
"""
