"""The floor under any `promptlab run`: the interpreter, the imports a run needs before its
first trial, and Hydra's composition of the experiment in the working directory; nothing
rendered, looked up, sent or stored. Run from a project directory:

    python benchmarks/_floor.py        # prints FLOOR_S=<seconds inside the process>

The whole process's wall time, measured by the caller, is the floor a cached re-run can
never go under while it composes with Hydra and stores through SQLAlchemy.
"""

import time

T0 = time.perf_counter()

from promptlab.cli.run import RUN_MODULES, _load  # noqa: E402
from promptlab.cli.startup import command_gc, start_up  # noqa: E402

with command_gc(), start_up(*RUN_MODULES, "promptlab.store"):
    _load(None, [])
print(f"FLOOR_S={time.perf_counter() - T0:.3f}")
