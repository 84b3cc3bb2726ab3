"""Run one promptlab command and report its peak RSS and its CPU time, its children's
included, on stderr (also when the command exits through SystemExit, as `--help` does)."""

import resource
import sys

from promptlab.cli import main

code = 1
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
finally:
    # Peak RSS: this process's own. (RUSAGE_CHILDREN's peak is no measure of the child
    # that stores a big run's trials: on Linux a child's high-water mark starts at its
    # parent's RSS when it was forked, before exec.) CPU: its children's added.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime + kids.ru_utime + kids.ru_stime
    print(f"BENCH_RSS_KB={usage.ru_maxrss} BENCH_CPU_S={cpu:.3f}", file=sys.stderr)
sys.exit(code)
