"""What the tests (and the benchmarks) share, apart from the test modules themselves.

`scripted` every fake chat model · `services` the one factory of the graph's services for
tests (and every test server's `CPA_SERVER_SERVICES` hook made with it) · `executors` the
recording executor · `planner_harness` a graph driven step by step · `server_harness`,
`a2a_harness`, `console_harness`, `cli_harness` servers and command lines in subprocesses ·
`crash_driver`, `replica_services` the crash drill's and the replicas' processes ·
`processes`, `server_log`, `containers`, `fake_llm`, `llama_server`, `mcp_notes_server`
what those start and read.
"""
