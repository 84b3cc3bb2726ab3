"""A mock server with any MockConfig (JSON in argv[1]) on port argv[2]; runs until killed.

The fault and overload benchmarks give the mock its whole config (faults, a rate cap, a
one-second Retry-After as a real provider sends) in one argument.
"""

import json
import signal
import sys
import threading

from promptlab.testing import MockConfig, MockServer

# No request bodies kept, unless the config asks: see `Mock` in run.py.
config = MockConfig(**{"keep_requests": 0, **json.loads(sys.argv[1])})
server = MockServer(config, port=int(sys.argv[2])).start()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
server.stop()
