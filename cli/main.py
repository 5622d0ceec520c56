"""`cpa-planner`: the command line (docs/cli.md).

Only argparse is imported at start-up; each command imports what it needs, so
`intents explain` and `--help` never load LangGraph.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence

from cli.exits import CONFIG, FAILED, INTERRUPTED, CLIError


def _common() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's default must not undo `cpa-planner --debug run ...`.
    parent.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the traceback of an error",
    )
    return parent


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        metavar="URL",
        help="talk to a running `cpa-planner serve` instead of running locally "
        "(default: $CPA_SERVER_URL)",
    )
    parser.add_argument("--api-key", metavar="KEY", help="its API key (default: $CPA_API_KEY)")


def _conversation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="print only the final JSON object on standard output (prompts go to stderr)",
    )
    parser.add_argument("-y", "--yes", action="store_true", help="approve plans without asking")
    parser.add_argument(
        "--no-input",
        action="store_true",
        help="never ask at the terminal: leave what waits for an answer waiting (exit 5)",
    )
    _server_options(parser)


CONVERSATION_ID_HELP = (
    "the conversation's id (run prints it; with --server, the id the server gave, also in "
    "GET /v1/conversations)"
)

EPILOG = """\
exit status:
  0  done          1  the conversation failed      2  bad command line
  3  configuration (settings, intent registry, Redis, server) cannot be used
  4  no such conversation   5  waits for an answer (resume it)   130  stopped with Ctrl-C
"""


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="cpa-planner",
        description="Plan and run a request as a graph of ToDos (LangGraph, LAM, Redis).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        parents=[common],
        help="run one request and show its plan and progress live",
        description='Run one request, e.g.  cpa-planner run "Remind me to call Anna at 9"',
    )
    run.add_argument("request", nargs="+", help="what to do, in English or German")
    _conversation_options(run)

    resume = commands.add_parser(
        "resume",
        parents=[common],
        help="continue a conversation that waits or was stopped",
        description="Continue conversation ID: answer what waits for an answer here, run "
        "what was stopped (Ctrl-C, a crash); a finished one is shown. ID is printed by run.",
    )
    resume.add_argument("conversation_id", metavar="ID", help=CONVERSATION_ID_HELP)
    _conversation_options(resume)

    show = commands.add_parser(
        "show",
        parents=[common],
        help="show a conversation: state, plan and LAM log",
        description="Show conversation ID: its status, intent, plan with each ToDo's "
        "status, answer, and LAM log. ID is printed by run.",
    )
    show.add_argument("conversation_id", metavar="ID", help=CONVERSATION_ID_HELP)
    show.add_argument("--json", action="store_true", help="the conversation as JSON")
    _server_options(show)

    tools = commands.add_parser(
        "tools",
        parents=[common],
        help="list the tools the planner plans with (executors, offers, MCP servers, files)",
        description="List the action catalogue: the executors and the tools of the agents' "
        "offers, the MCP servers and the catalogue files, each with its effect and who runs "
        "it. With --request, only what the planner would show for that request.",
    )
    tools.add_argument(
        "--request", metavar="TEXT", help="only the tools a plan for this request would see"
    )
    tools.add_argument("--json", action="store_true", help="the catalogue as JSON")
    _server_options(tools)

    intents = commands.add_parser(
        "intents",
        parents=[common],
        help="the intent tiers: explain a decision, check a registry, measure, calibrate",
    )
    sub = intents.add_subparsers(dest="intents_command", metavar="COMMAND", required=True)
    explain = sub.add_parser(
        "explain",
        parents=[common],
        help="the decision for a request without an LLM: rules, compound, classifier",
        description="The decision for a request without any LLM: the rule or the classifier "
        "that decided, or why none did (several actions: compound). With - instead of a "
        "text, one request per line is read from standard input.",
    )
    explain.add_argument("text", help='the request, or "-" to read one per line from stdin')
    explain.add_argument("--json", action="store_true", help="one JSON object per request")
    explain.add_argument(
        "--registry", metavar="FILE", help="intent registry (default: $CPA_INTENTS_PATH)"
    )
    check = sub.add_parser(
        "check", parents=[common], help="check an intent registry file, every problem by line"
    )
    check.add_argument(
        "file", nargs="?", help="registry YAML (default: $CPA_INTENTS_PATH or the packaged one)"
    )
    sub.add_parser(
        "schema",
        parents=[common],
        help="print the registry file's JSON Schema (for editors)",
        description="Print the JSON Schema of an intent registry file, made from the models "
        "that check it. prompts/intents.schema.json is this output; editors that know JSON "
        "Schema (the YAML language server) check a registry with it as you type.",
    )
    evaluate = sub.add_parser(
        "eval",
        parents=[common],
        help="precision, coverage and false fires per tier on labelled requests",
        description='Decide every line of a JSON Lines file {"text": ..., "intent": ...} '
        "(intent null: out of scope; a list: several actions) and print, per tier, the "
        "precision, the coverage of single-action requests, the false fires of intents "
        "that change things, and a confusion table.",
    )
    evaluate.add_argument("file", help="labelled requests (JSON Lines)")
    evaluate.add_argument("--json", action="store_true", help="the report as one JSON object")
    evaluate.add_argument(
        "--registry", metavar="FILE", help="intent registry (default: $CPA_INTENTS_PATH)"
    )
    calibrate = sub.add_parser(
        "calibrate",
        parents=[common],
        help="pick the classifier's threshold, margin and support on labelled requests",
        description="Measure the example classifier on labelled requests that are not its "
        "examples and print the threshold, margin and support floor that decide the most of "
        "them right with the precision asked for and no false fire of an intent that changes "
        "things.",
    )
    calibrate.add_argument("file", help="labelled requests (JSON Lines)")
    calibrate.add_argument(
        "--precision", type=float, default=0.98, help="the precision to keep (default 0.98)"
    )
    calibrate.add_argument(
        "--registry", metavar="FILE", help="intent registry (default: $CPA_INTENTS_PATH)"
    )

    serve = commands.add_parser(
        "serve", parents=[common], help="start the HTTP API (keys from CPA_API_KEYS)"
    )
    serve.add_argument("--host", help="default: $CPA_HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, help="default: $CPA_PORT or 8000")
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="server processes on this port, each a replica on the one Redis "
        "(default: $CPA_WORKERS or 1)",
    )

    studio = commands.add_parser(
        "studio", parents=[common], help="start LangGraph Studio's dev server (offline settings)"
    )
    studio.add_argument("--port", type=int, default=None, help="default: a free port")
    studio.add_argument(
        "--verbose", action="store_true", help="the dev server's own log, INFO and up"
    )
    from cli import keys_cmd

    keys_cmd.add_parser(commands, common)

    llm = commands.add_parser(
        "llm-server",
        parents=[common],
        help="serve a local LLM for the planner (llama-server, SmolLM2; make llm-server)",
        description="Serve SmolLM2-135M-Instruct with llama.cpp's llama-server on 127.0.0.1, "
        "as installed by `make llm-server`, and print the settings that point cpa-planner "
        "at it. Runs until Ctrl-C.",
    )
    llm.add_argument("--port", type=int, default=8080, help="default: 8080")
    llm.add_argument("--model", metavar="FILE", help="another GGUF model file to serve")
    llm.add_argument("--name", default="smollm2", help="the model's name (CPA_LLM_MODEL)")
    llm.add_argument("--llama-server", metavar="FILE", help="another llama-cpp-server to run")
    llm.add_argument(
        "--context", type=int, default=4096, metavar="TOKENS", help="context size (default: 4096)"
    )
    llm.add_argument(
        "--threads", type=int, metavar="N", help="threads to compute with (default: llama.cpp's)"
    )

    from cli import history_cmd

    history_cmd.add_parsers(commands, common, _server_options)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cpa-planner")
    except PackageNotFoundError:
        return "unknown"


def _handler(args: argparse.Namespace) -> Callable[[argparse.Namespace], int]:
    if args.command == "intents":
        from cli import intents_cmd

        if args.intents_command == "explain":
            return lambda a: intents_cmd.explain(a.text, as_json=a.json, registry=a.registry)
        if args.intents_command == "eval":
            return lambda a: intents_cmd.evaluate(a.file, as_json=a.json, registry=a.registry)
        if args.intents_command == "calibrate":
            return lambda a: intents_cmd.calibrate(a.file, target=a.precision, registry=a.registry)
        if args.intents_command == "schema":
            return lambda a: intents_cmd.schema()
        return lambda a: intents_cmd.check(a.file)
    if args.command == "tools":
        from cli import tools_cmd

        return tools_cmd.tools
    if args.command == "keys":
        from cli import keys_cmd

        return keys_cmd.run
    if args.command in ("history", "db"):
        from cli import history_cmd

        return history_cmd.handler(args)
    if args.command == "llm-server":
        from cli import llm_server

        return llm_server.run
    if args.command in ("serve", "studio"):
        from cli import servers

        return servers.serve if args.command == "serve" else servers.studio
    from cli import conversation_cmds

    handler: Callable[[argparse.Namespace], int] = getattr(conversation_cmds, args.command)
    return handler


def _status_for(exc: BaseException) -> int | None:
    """CONFIG for an error that is the user's set-up, not a bug; None for anything else.

    Imported here, on failure only, and light (no LangGraph): the settings, the intent
    registry, the embedded store. The errors of the heavy parts (Redis, the server) become
    CLIError where they are raised (`cli.local`, `cli.servers`).
    """
    from graph.config import ConfigError
    from graph.intents import RegistryError
    from graph.storage.embedded import EmbeddedRedisError

    if isinstance(exc, ConfigError | RegistryError | EmbeddedRedisError):
        return CONFIG
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    if not debug:
        import warnings

        warnings.simplefilter("ignore")  # library deprecation chatter is not for end users
    try:
        return _handler(args)(args)
    except CLIError as exc:
        if debug:
            traceback.print_exc()
        print(f"cpa-planner: error: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print("\ncpa-planner: stopped", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # `cpa-planner intents explain - | head`: the reader left; that is fine.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        return 0
    except Exception as exc:
        if debug:
            traceback.print_exc()
        status = _status_for(exc)
        if status is None:
            print(
                f"cpa-planner: error: {type(exc).__name__}: {_one_line(exc)} "
                "(run with --debug for the traceback)",
                file=sys.stderr,
            )
            return FAILED
        print(f"cpa-planner: error: {_one_line(exc)}", file=sys.stderr)
        return status


if __name__ == "__main__":
    raise SystemExit(main())
