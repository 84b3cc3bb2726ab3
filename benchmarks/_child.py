"""Run one promptlab command and report its own peak RSS and CPU time on stderr."""

import resource
import sys

from promptlab.cli import main

code = main(sys.argv[1:])
usage = resource.getrusage(resource.RUSAGE_SELF)
print(f"BENCH_RSS_KB={usage.ru_maxrss} BENCH_CPU_S={usage.ru_utime + usage.ru_stime:.3f}",
      file=sys.stderr)
sys.exit(code)
