"""moto's server (DynamoDB + Secrets Manager API on 127.0.0.1) with one change: requests are
handled one at a time.

DynamoDB applies each write atomically (ADD counters, conditional writes, transactions).
moto's threaded server does not lock its in-memory tables, so two concurrent UpdateItem ADDs
can lose an increment — which would make the concurrency tests test moto, not Portcullis.
A lock around each request restores DynamoDB's guarantee; connections are still accepted
concurrently.

usage: python scripts/moto-server.py PORT
"""
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


class Serialised:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            # Materialise the body inside the lock: the work happens while it is produced.
            return list(self.app(environ, start_response))


def main() -> None:
    port = int(sys.argv[1])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = Serialised(DomainDispatcherApplication(create_backend_app))
    run_simple("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
