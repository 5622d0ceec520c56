"""The HTTP API for the CPA Desktop AI (SPEC §5), a thin layer over `graph.conversations`.

`server.py` builds the app (`create_app`) and runs it (`serve`); the parts live here:

    settings      ServerSettings from the environment: API keys, limits, the services hook
    errors        ApiError, the `{"error": {...}}` body and the app's exception handlers
    models        response models (for the OpenAPI document; bodies are built as dicts)
    auth          the caller's tenant, from `Authorization: Bearer <key>`
    local_mode    no API keys: serve this machine's programs only (bind, Host, Origin, client)
    redis_keys    where the HTTP layer keeps its state in Redis (`<prefix>:srv:...`)
    records       each conversation's record in Redis (claim, status, tenant caps, TTL), in Lua
    runner        one run at a time per conversation, in this process
    hub           accepting messages, running, looking; resume at start-up; expiring waits
    idempotency   one response per message id: a repeated message gets the first answer
    events        each conversation's event log, fanned out to SSE listeners from one
                  subscription per process
    openapi       FastAPI's document plus the LAM message schema
    routes        the endpoints

Dependencies run one way: routes -> hub -> records, runner, events.

Nothing in `lam/`, `graph/` or `nodes/` imports this package.
"""
