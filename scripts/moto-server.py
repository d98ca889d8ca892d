"""moto's server (DynamoDB, Secrets Manager and SES APIs on 127.0.0.1) with two changes:
requests are handled one at a time, and `GET /_test/ses/messages` lists the mail SES "sent"
(the tests read the verification and reset links from it).

DynamoDB applies each write atomically (ADD counters, conditional writes, transactions).
moto's threaded server does not lock its in-memory tables, so two concurrent UpdateItem ADDs
can lose an increment — which would make the concurrency tests test moto, not Portcullis.
A lock around each request restores DynamoDB's guarantee; connections are still accepted
concurrently.

`/_test/ses/messages` answers {"messages": [{"id", "source", "destinations", "subject",
"body"}, ...]}, oldest first, straight from moto's SES backend (moto's own
/moto-api/data.json walks every object it ever made, DynamoDB items included, while holding
the lock).

usage: python scripts/moto-server.py PORT
"""
import json
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.ses.models import Message, ses_backends
from werkzeug.serving import run_simple


def sent_messages() -> list:
    out = []
    for regions in ses_backends.values():
        for backend in regions.values():
            for m in backend.sent_messages:
                if isinstance(m, Message):
                    out.append({"id": m.id, "source": m.source, "destinations": m.destinations,
                                "subject": m.subject, "body": m.body})
    return out


class Serialised:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            if environ.get("PATH_INFO") == "/_test/ses/messages":
                body = json.dumps({"messages": sent_messages()}).encode()
                start_response("200 OK", [("Content-Type", "application/json"),
                                          ("Content-Length", str(len(body)))])
                return [body]
            # Materialise the body inside the lock: the work happens while it is produced.
            return list(self.app(environ, start_response))


def main() -> None:
    port = int(sys.argv[1])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = Serialised(DomainDispatcherApplication(create_backend_app))
    run_simple("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
