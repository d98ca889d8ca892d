#!/usr/bin/env python3
"""A tiny local stand-in for API Gateway (HTTP API, payload format 2.0, a Lambda authorizer
with simple responses) in front of `cargo lambda watch`.

usage: gateway.py PORT WATCH_URL
  PORT       port to listen on, 127.0.0.1 only
  WATCH_URL  where `cargo lambda watch` serves the Lambda Invoke API, e.g.
             http://127.0.0.1:9000 (POST {WATCH_URL}/2015-03-31/functions/NAME/invocations)

For a request matching a route in ROUTES:
  1. the authorizer gets (always: template.yaml gives the authorizer no identity sources, so
     API Gateway invokes it for every request, with or without a credential) an HTTP API payload 2.0 REQUEST event (the shape of
     events/authorizer-http.json): `isAuthorized: false` -> 403 {"message":"Forbidden"}; an
     invocation that fails (non-200, a function error, or no boolean `isAuthorized`) -> 500
     {"message":"Internal Server Error"};
  2. allowed: the route's function gets a payload 2.0 API event whose
     requestContext.authorizer.lambda is the authorizer's `context`, and its answer
     (statusCode, headers, multiValueHeaders, cookies, body, isBase64Encoded) is relayed.
Anything else: 404 {"message":"Not Found"}. `GET /_health` answers 200 (for wait-http.py).
Request bodies are capped at 1 MiB (413), each invocation at 30 s (500).

Logs one line per request to stderr: method, path (no query string), status, duration --
never a header value, query string or body (tokens and API keys travel there). SIGTERM or
SIGINT stops it cleanly (exit 0). Standard library only.
"""

import base64
import http.client
import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# (method, path) -> (function, authorizer function or None). Exact matches only.
ROUTES = {
    ("GET", "/whoami"): ("whoami", "authorizer"),
    # The same function behind an "admin" path: scripts/with-stack.sh gives the authorizer the
    # route rule `GET /admin/*=mfa`, so only a token from a login with a second factor passes.
    ("GET", "/admin/whoami"): ("whoami", "authorizer"),
}

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
API_ID = "local"
STAGE = "$default"
MAX_BODY = 1024 * 1024  # request body limit (bytes)
MAX_RESPONSE = 6 * 1024 * 1024  # Lambda's own synchronous response limit
INVOKE_TIMEOUT = 30.0  # seconds, per invocation
CLIENT_TIMEOUT = 30.0  # seconds a client may stall while sending its request
# Hop-by-hop headers: not passed to a function, nor relayed from its answer.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade",
              "proxy-connection", "te", "trailer"}

# Never use a proxy from the environment: everything here is on 127.0.0.1.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class InvokeError(Exception):
    """An invocation that did not produce a usable answer (the message holds no secrets)."""


def invoke(watch_url, function, event):
    """Invoke FUNCTION synchronously with EVENT; return its decoded JSON answer."""
    req = urllib.request.Request(
        f"{watch_url}/2015-03-31/functions/{function}/invocations",
        data=json.dumps(event).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with OPENER.open(req, timeout=INVOKE_TIMEOUT) as resp:
            status = resp.status
            function_error = resp.headers.get("x-amz-function-error")
            raw = resp.read(MAX_RESPONSE + 1)
    except urllib.error.HTTPError as e:
        raise InvokeError(f"{function}: invoke API answered {e.code}") from None
    except (OSError, http.client.HTTPException) as e:  # refused, reset, timed out, cut
        raise InvokeError(f"{function}: invoke failed: {type(e).__name__}") from None
    if status != 200:
        raise InvokeError(f"{function}: invoke API answered {status}")
    if len(raw) > MAX_RESPONSE:
        raise InvokeError(f"{function}: answer over {MAX_RESPONSE} bytes")
    try:
        answer = json.loads(raw) if raw.strip() else None
    except ValueError:
        raise InvokeError(f"{function}: answer is not JSON") from None
    if function_error or (isinstance(answer, dict) and "errorType" in answer
                          and "errorMessage" in answer):
        kind = answer.get("errorType") if isinstance(answer, dict) else function_error
        # errorType only: a message is the function's business.
        raise InvokeError(f"{function}: function error {kind!r}")
    return answer


def now_fields():
    epoch_ms = int(time.time() * 1000)
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch_ms / 1000))
    return stamp, epoch_ms


class Gateway(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, port, watch_url):
        super().__init__(("127.0.0.1", port), Handler)
        self.watch_url = watch_url.rstrip("/")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "portcullis-local-gateway"
    sys_version = ""
    timeout = CLIENT_TIMEOUT

    # -- plumbing ------------------------------------------------------------------------

    def version_string(self):
        return self.server_version

    def handle_expect_100(self):
        # Refuse an oversized body before the client sends it, not after `100 Continue`.
        try:
            too_big = int(self.headers.get("content-length", "0")) > MAX_BODY
        except ValueError:
            too_big = False
        if too_big:
            self.started, self.request_id = time.monotonic(), str(uuid.uuid4())
            self.close_connection = True
            self.message(413, "Request Entity Too Large")
            return False
        return super().handle_expect_100()

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass  # the base class logs the request line, query string included: not here

    def log_request(self, code="-", size="-"):
        pass  # see finish_log

    def finish_log(self, status):
        path = self.path.split("?", 1)[0]
        ms = (time.monotonic() - self.started) * 1000
        print(f"{self.command} {path} -> {status} ({ms:.1f} ms)", file=sys.stderr, flush=True)

    def reply(self, status, body=b"", headers=(), cookies=()):
        self.send_response(status)
        names = set()
        for name, value in headers:
            names.add(name.lower())
            self.send_header(name, value)
        for cookie in cookies:
            self.send_header("set-cookie", cookie)
        if "content-type" not in names and body:
            self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("apigw-requestid", self.request_id)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.finish_log(status)

    def message(self, status, text):
        self.reply(status, json.dumps({"message": text}).encode())

    def read_body(self):
        """The request body (bytes), or None when a reply has already been sent."""
        te = self.headers.get("transfer-encoding", "").lower()
        if te and te != "identity":
            if te != "chunked":
                self.close_connection = True
                self.message(501, "Not Implemented")
                return None
            return self.read_chunked()
        length = self.headers.get("content-length")
        if length is None:
            return b""
        try:
            n = int(length)
            if n < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            self.message(400, "Bad Request")
            return None
        if n > MAX_BODY:
            self.close_connection = True
            self.message(413, "Request Entity Too Large")
            return None
        return self.rfile.read(n)

    def read_chunked(self):
        body = bytearray()
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                self.message(400, "Bad Request")
                return None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(body)
            if len(body) + size > MAX_BODY:
                self.close_connection = True
                self.message(413, "Request Entity Too Large")
                return None
            body += self.rfile.read(size)
            self.rfile.readline(3)

    # -- the events ----------------------------------------------------------------------

    def request_parts(self):
        """The parts both events share: headers, cookies, query, requestContext."""
        raw_path, _, raw_query = self.path.partition("?")
        headers, cookies = {}, []
        for name, value in self.headers.items():
            name = name.lower()
            if name in HOP_BY_HOP and name != "content-length":
                continue
            if name == "cookie":
                cookies += [c.strip() for c in value.split(";") if c.strip()]
            elif name in headers:
                headers[name] += "," + value
            else:
                headers[name] = value
        host = self.server.server_address
        headers.setdefault("host", f"{host[0]}:{host[1]}")
        headers["x-forwarded-for"] = self.client_address[0]
        headers["x-forwarded-port"] = str(host[1])
        headers["x-forwarded-proto"] = "http"
        query = {}
        for pair in filter(None, raw_query.split("&")):
            key, _, value = pair.partition("=")
            key = urllib.parse.unquote_plus(key)
            value = urllib.parse.unquote_plus(value)
            query[key] = f"{query[key]},{value}" if key in query else value
        stamp, epoch_ms = now_fields()
        domain = headers["host"]
        context = {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": self.command,
                "path": raw_path,
                "protocol": self.request_version,
                "sourceIp": self.client_address[0],
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": self.request_id,
            "routeKey": self.route_key,
            "stage": STAGE,
            "time": stamp,
            "timeEpoch": epoch_ms,
        }
        return raw_path, raw_query, headers, cookies, query, context

    def authorizer_event(self, parts):
        raw_path, raw_query, headers, cookies, query, context = parts
        method, path = self.route_key.split(" ", 1)
        event = {
            "version": "2.0",
            "type": "REQUEST",
            "routeArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/{STAGE}/"
                        f"{method}{path}",
            # No identity sources are configured (template.yaml), so API Gateway sends none.
            "identitySource": [],
            "routeKey": self.route_key,
            "rawPath": raw_path,
            "rawQueryString": raw_query,
            "headers": headers,
            "requestContext": context,
        }
        if cookies:
            event["cookies"] = cookies
        if query:
            event["queryStringParameters"] = query
        return event

    def api_event(self, parts, body, authorizer_context):
        raw_path, raw_query, headers, cookies, query, context = parts
        context = dict(context)
        if authorizer_context is not None:
            context["authorizer"] = {"lambda": authorizer_context}
        event = {
            "version": "2.0",
            "routeKey": self.route_key,
            "rawPath": raw_path,
            "rawQueryString": raw_query,
            "headers": headers,
            "requestContext": context,
            "isBase64Encoded": False,
        }
        if cookies:
            event["cookies"] = cookies
        if query:
            event["queryStringParameters"] = query
        if body:
            try:
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(body).decode()
                event["isBase64Encoded"] = True
        return event

    # -- a request -----------------------------------------------------------------------

    def handle_any(self):
        self.started = time.monotonic()
        self.request_id = str(uuid.uuid4())
        try:
            self.route_request()
        except Exception as e:  # noqa: BLE001 -- answer 500, log the kind only, keep serving
            print(f"gateway error: {type(e).__name__}", file=sys.stderr, flush=True)
            self.close_connection = True
            try:
                self.message(500, "Internal Server Error")
            except OSError:
                pass

    def route_request(self):
        body = self.read_body()  # always: a keep-alive connection must stay in step
        if body is None:
            return
        path = self.path.split("?", 1)[0]
        if self.command in ("GET", "HEAD") and path == "/_health":
            self.reply(200, b'{"status":"ok"}')
            return
        route = ROUTES.get((self.command, path))
        if route is None:
            self.message(404, "Not Found")
            return
        function, authorizer = route
        self.route_key = f"{self.command} {path}"
        parts = self.request_parts()
        authorizer_context = None
        if authorizer is not None:
            try:
                answer = invoke(self.server.watch_url, authorizer,
                                self.authorizer_event(parts))
            except InvokeError as e:
                print(f"authorizer failed: {e}", file=sys.stderr, flush=True)
                self.message(500, "Internal Server Error")
                return
            allowed = answer.get("isAuthorized") if isinstance(answer, dict) else None
            if not isinstance(allowed, bool):
                print("authorizer failed: no boolean isAuthorized", file=sys.stderr, flush=True)
                self.message(500, "Internal Server Error")
                return
            if not allowed:
                self.message(403, "Forbidden")
                return
            authorizer_context = answer.get("context") or {}
        try:
            answer = invoke(self.server.watch_url, function,
                            self.api_event(parts, body, authorizer_context))
        except InvokeError as e:
            print(f"integration failed: {e}", file=sys.stderr, flush=True)
            self.message(500, "Internal Server Error")
            return
        self.relay(answer)

    def relay(self, answer):
        """Turn a payload 2.0 Lambda answer into the HTTP response, as API Gateway does."""
        if not isinstance(answer, dict) or "statusCode" not in answer:
            # No statusCode: the whole answer is a JSON body with status 200.
            self.reply(200, json.dumps(answer).encode(),
                       headers=[("content-type", "application/json")])
            return
        try:
            status = int(answer["statusCode"])
            if not 100 <= status <= 599:
                raise ValueError
            body = answer.get("body") or ""
            body = (base64.b64decode(body, validate=True) if answer.get("isBase64Encoded")
                    else body.encode("utf-8"))
            headers = []
            single = answer.get("headers") or {}
            for name, value in single.items():
                if name.lower() not in HOP_BY_HOP:
                    headers.append((name, str(value)))
            for name, values in (answer.get("multiValueHeaders") or {}).items():
                if name.lower() in HOP_BY_HOP or any(name.lower() == k.lower() for k in single):
                    continue
                headers += [(name, str(v)) for v in values]
            cookies = [str(c) for c in answer.get("cookies") or []]
        except (TypeError, ValueError, AttributeError):
            print("integration failed: malformed response", file=sys.stderr, flush=True)
            self.message(500, "Internal Server Error")
            return
        self.reply(status, body, headers=headers, cookies=cookies)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = handle_any


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gateway.py PORT WATCH_URL")
    server = Gateway(int(sys.argv[1]), sys.argv[2])

    def stop(signum, frame):
        # shutdown() waits for serve_forever() to return: not from its own thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"gateway on http://127.0.0.1:{server.server_address[1]} -> {server.watch_url}",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    print("gateway stopped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
