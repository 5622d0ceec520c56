"""`python -m cli` is `cpa-planner`."""

from cli.main import main

raise SystemExit(main())
