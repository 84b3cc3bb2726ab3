"""`promptlab serve`: a REST API and a web viewer over a results database.

Needs the ``serve`` extra (FastAPI, uvicorn). `create_app(ServeSettings(...))` gives the
ASGI application; `promptlab.cli.serve` runs it with uvicorn.
"""

from promptlab.serve.app import ServeSettings, create_app

__all__ = ["ServeSettings", "create_app"]
