"""The HTTP API for the CPA Desktop AI (docs/http.md), a thin layer over `graph.conversations`.

`server.py` builds the app (`create_app`) and runs it (`serve`); the parts live here:

    settings      ServerSettings from the environment: API keys, limits, the services hook
    errors        ApiError, the `{"error": {...}}` body and the app's exception handlers
    models        the response models the handlers return (and the OpenAPI document shows)
    auth          the caller's principal, from `Authorization: Bearer <credential>`
    dependencies  the routes' other FastAPI dependencies: this replica, a conversation id,
                  a JSON body within its limits
    local_mode    no API keys: serve this machine's programs only (bind, Host, Origin, client)
    replica       this process's parts for one graph's conversations, built and started:
      tenants       a tenant's conversations (threads `T/C`, ownership, the list)
      accepting     requests open conversations, answers are taken once
      runner        this replica's consumer of the job stream: claims conversations, hands
                    each claim to `running`, takes over a dead replica's
      running       a claimed conversation run (a typed `Work`), where it stopped recorded
      expiry        waits that last too long end as failed (`expired`)
      views         the conversation body, the inbox, where an event stream starts
    idempotency   one response per message id: a repeated message gets the first answer
    events        the SSE feeds of each conversation's event log, fanned out to listeners
                  from one subscription per process
    offers        the planner's offer (discover, capabilities), agents' offers of tools
    openapi       FastAPI's document plus the LAM message schema
    routes        the LAM API's endpoints, one router per resource (health, lam,
                  conversations, capabilities); tools, overview, history, metrics, console
                  and a2a have their own routers

What the server keeps in Redis (records, leases, the event log, keys) is `graph.storage`'s;
Redis outages are waited out with its one retry policy (`graph.storage.outage`).
Dependencies run one way: routes -> replica -> accepting, running, expiry, views ->
tenants, records, leases, events; the runner is given `running`'s `run_claim`.

Nothing in `lam/`, `graph/` or `nodes/` imports this package.
"""
