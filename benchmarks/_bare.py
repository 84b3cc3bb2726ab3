"""The reference: a bare aiohttp loop sending N chat requests at concurrency C to URL.

    python benchmarks/_bare.py URL N C [uvloop]  # prints BARE_S=<seconds> for the N
                                                 # requests, BARE_CPU_S=<process CPU s>

With ``uvloop`` the same loop runs on uvloop's event loop, as promptlab's runs do where
uvloop is installed (the second reference).
"""

import asyncio
import json
import resource
import sys
import time

import aiohttp


async def main(url: str, n: int, concurrency: int) -> float:
    todo = iter(range(n))

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in todo:
            question = f"Question {i}: what is {i} plus one?"
            body = {"model": "mock-small", "max_tokens": 16, "temperature": 0.0,
                    "messages": [{"role": "system", "content": "Answer briefly."},
                                 {"role": "user", "content": question}]}
            async with session.post(url + "/v1/chat/completions", data=json.dumps(body),
                                    headers={"content-type": "application/json"}) as r:
                await r.read()

    t0 = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
    return time.perf_counter() - t0


if sys.argv[4:] == ["uvloop"]:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        loop_s = runner.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
else:
    loop_s = asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
usage = resource.getrusage(resource.RUSAGE_SELF)
print(f"BARE_S={loop_s:.4f} BARE_CPU_S={usage.ru_utime + usage.ru_stime:.3f}")
