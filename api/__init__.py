"""The HTTP API for the CPA Desktop AI (docs/http.md), a thin layer over `graph.conversations`.

`server.py` builds the app (`create_app`) and runs it (`serve`); the parts live here:

    settings      ServerSettings from the environment: API keys, limits, the services hook
    errors        ApiError, the `{"error": {...}}` body and the app's exception handlers
    models        response models (for the OpenAPI document; bodies are built as dicts)
    auth          the caller's tenant, from `Authorization: Bearer <key>`
    local_mode    no API keys: serve this machine's programs only (bind, Host, Origin, client)
    redis_keys    where the HTTP layer keeps its state in Redis (`<prefix>:srv:...`)
    records       each conversation's record in Redis (claim, answers once, status, tenant
                  caps, TTL), in Lua
    leases        each conversation's run lease and its generation (the fencing token)
    runner        this replica's consumer of the job stream: claims conversations, runs
                  them under their lease, takes over a dead replica's
    hub           accepting messages, running, looking; expiring waits
    idempotency   one response per message id: a repeated message gets the first answer
    events        each conversation's event log, fanned out to SSE listeners from one
                  subscription per process
    openapi       FastAPI's document plus the LAM message schema
    routes        the endpoints

Dependencies run one way: routes -> hub -> records, runner -> leases, events.

Nothing in `lam/`, `graph/` or `nodes/` imports this package.
"""
