"""`serve`: the REST API and web viewer over a results database (the `serve` extra)."""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path

from promptlab.cli.common import add_db
from promptlab.errors import UserError

__all__ = ["register", "check_bind"]

TOKEN_ENV = "PROMPTLAB_SERVE_TOKEN"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser(
        "serve", help="a REST API and web viewer over the results (pip install "
                      "'promptlab[serve]')",
        description="Serve the runs of a database: pages to browse, filter, compare and rate "
                    "outputs, and a JSON API (OpenAPI at /openapi.json). Binds 127.0.0.1; any "
                    "other address needs --token.",
        epilog="examples:\n  promptlab serve --db results.db\n  promptlab serve --host 0.0.0.0 "
               "--token \"$(openssl rand -hex 16)\" --read-only",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db(serve)
    serve.add_argument("--experiments", metavar="DIR",
                       help="experiments directory that POST /api/runs launches from "
                            "(default: none, launching off)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8321, help="port (default 8321)")
    serve.add_argument("--token", help=f"API token (or ${TOKEN_ENV}); required on a "
                                       "non-loopback address. Without one, a loopback server "
                                       "makes one up and prints it")
    serve.add_argument("--read-only", action="store_true",
                       help="refuse every change: no launch, delete or rating; the database "
                            "is opened read-only")
    serve.set_defaults(handler=cmd_serve)


def check_bind(host: str, token: str | None) -> str:
    """The token to use: a non-loopback bind must have one; loopback gets a random one."""
    from promptlab.serve.security import is_loopback

    if token:
        if len(token) < 8:
            raise UserError("--token: use at least 8 characters (e.g. openssl rand -hex 16)")
        return token
    if not is_loopback(host):
        raise UserError(f"--host {host}: a server reachable from other machines needs "
                        f"--token TOKEN (or ${TOKEN_ENV}); or bind 127.0.0.1")
    return secrets.token_urlsafe(24)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from promptlab.serve import ServeSettings, create_app
    except ImportError as exc:
        raise UserError(f"promptlab serve needs the serve extra ({exc.name} is missing): "
                        "pip install 'promptlab[serve]'") from None
    token = check_bind(args.host, args.token or os.environ.get(TOKEN_ENV))
    experiments = Path(args.experiments) if args.experiments else None
    if experiments is not None and not (experiments / "config.yaml").is_file():
        raise UserError(f"--experiments {experiments}: no config.yaml there; pass the "
                        "experiments directory runs are launched from")
    settings = ServeSettings(db=args.db, experiments=experiments, host=args.host,
                             port=args.port, token=token, read_only=args.read_only)
    app = create_app(settings)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"promptlab serve on http://{shown}:{args.port}/ "
          f"({'read-only' if args.read_only else 'read-write'}); API token: {token}",
          flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
