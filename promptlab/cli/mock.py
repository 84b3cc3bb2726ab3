"""`mock-server`: serve the built-in mock LLM API on 127.0.0.1."""

from __future__ import annotations

import argparse

__all__ = ["register"]

FAULTS = ("429", "500", "529", "slow", "drop", "malformed")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mock = sub.add_parser("mock-server", help="serve the mock LLM API on 127.0.0.1",
                          description="A real HTTP server speaking the OpenAI Chat Completions, "
                                      "/v1/models and Anthropic Messages wire formats.")
    mock.add_argument("--port", type=int, default=8089)
    mock.add_argument("--latency-ms", type=float, default=0.0)
    for kind in FAULTS:
        mock.add_argument(f"--fault-{kind}", type=float, default=0.0, metavar="RATE",
                          help=f"fraction of requests answered with fault '{kind}'")
    mock.add_argument("--slow-ms", type=float, default=5000.0)
    mock.add_argument("--retry-after-s", type=float, default=0.01, metavar="SECONDS",
                      help="the Retry-After sent with every 429 (fault or rate cap)")
    mock.add_argument("--max-rps", type=_above_zero, metavar="RATE",
                      help="a provider's rate limit: requests over RATE a second get 429 "
                           "with Retry-After at once (a token bucket; counted as rate:429 "
                           "in /_mock/stats)")
    mock.add_argument("--burst", type=float, metavar="N",
                      help="requests the rate cap admits at once (default: a tenth of a "
                           "second's worth of --max-rps, at least 1)")
    mock.add_argument("--rate-headers", action="store_true",
                      help="with --max-rps, send x-ratelimit-{limit,remaining,reset}-requests "
                           "with every answer, as OpenAI does")
    mock.add_argument("--seed", type=int, default=0)
    mock.add_argument("--api-key", help="require this key (Bearer or x-api-key)")
    mock.add_argument("--batch-delay-s", type=float, default=0.0,
                      help="seconds until a batch (OpenAI Batch, Anthropic Message Batches) ends")
    mock.add_argument("--batch-errored", type=float, default=0.0, metavar="RATE",
                      help="fraction of batch items that error")
    mock.add_argument("--batch-expired", type=float, default=0.0, metavar="RATE",
                      help="fraction of batch items that expire")
    mock.add_argument("--keep-requests", type=int, default=200_000, metavar="N",
                      help="keep the first N request bodies for GET /_mock/requests "
                           "(default 200,000; 0 for a server whose memory and cost per "
                           "request stay flat, as the benchmarks run it)")
    mock.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    mock.set_defaults(handler=cmd_mock_server)


def _above_zero(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):  # NaN too
        raise argparse.ArgumentTypeError(f"'{text}' is not a number above 0 (requests a "
                                         "second)")
    return value


def cmd_mock_server(args: argparse.Namespace) -> int:
    from promptlab.testing.mock_server import MockConfig, serve, watch_parent

    faults = {k: getattr(args, f"fault_{k}") for k in FAULTS}
    config = MockConfig(latency_ms=args.latency_ms, faults={k: v for k, v in faults.items() if v},
                        slow_ms=args.slow_ms, retry_after_s=args.retry_after_s,
                        max_rps=args.max_rps, burst=args.burst,
                        rate_headers=args.rate_headers, seed=args.seed, api_key=args.api_key,
                        batch_delay_s=args.batch_delay_s, batch_errored=args.batch_errored,
                        batch_expired=args.batch_expired,
                        keep_requests=max(0, args.keep_requests))
    if args.parent_pid:
        watch_parent(args.parent_pid)
    print(f"mock LLM server on http://127.0.0.1:{args.port}/v1", flush=True)
    serve(args.port, config)
    return 0
