"""Run one promptlab command and report its own peak RSS and CPU time on stderr (also when
the command exits through SystemExit, as `--help` does)."""

import resource
import sys

from promptlab.cli import main

code = 1
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
finally:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"BENCH_RSS_KB={usage.ru_maxrss} BENCH_CPU_S={usage.ru_utime + usage.ru_stime:.3f}",
          file=sys.stderr)
sys.exit(code)
