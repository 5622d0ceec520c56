"""The HTTP API for the CPA Desktop AI (SPEC §5), a thin layer over `graph.conversations`.

`server.py` builds the app (`create_app`) and runs it (`serve`); the parts live here:

    settings      ServerSettings from the environment: API keys, limits, the services hook
    errors        ApiError, the `{"error": {...}}` body and the app's exception handlers
    models        response models (for the OpenAPI document; bodies are built as dicts)
    auth          the caller's tenant, from `Authorization: Bearer <key>`
    redis_keys    where the HTTP layer keeps its state in Redis (`<prefix>:srv:...`)
    hub           conversations run in the background, one run at a time each; resume
    idempotency   one response per message id: a repeated message gets the first answer
    events        each conversation's event log in Redis, and its Server-Sent Events stream
    openapi       FastAPI's document plus the LAM message schema
    routes        the endpoints

Nothing in `lam/`, `graph/` or `nodes/` imports this package.
"""
