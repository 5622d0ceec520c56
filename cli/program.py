"""How to run `cpa-planner` again: a command the person can copy, whatever PATH holds.

After `make demo` only `.venv/bin/cpa-planner` exists, not `cpa-planner` on PATH; a hint
such as "continue it with: cpa-planner resume ID" must name what was really started.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys

NAME = "cpa-planner"


def program() -> str:
    """`cpa-planner` if PATH finds this very command; else its path, or `python -m cli`."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name in ("cli.__main__", "cli.main"):
        return f"{shlex.quote(sys.executable)} -m cli"
    started = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if os.path.basename(started) != NAME or not os.path.isfile(started):
        return NAME  # called from Python (tests, an embedding program): the plain name
    on_path = shutil.which(NAME)
    if on_path and os.path.samefile(on_path, started):
        return NAME
    return shlex.quote(started)
