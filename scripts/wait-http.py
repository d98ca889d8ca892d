"""Wait until URL answers any HTTP status (or fail after TIMEOUT seconds).

usage: wait-http.py URL TIMEOUT [CA_FILE]
"""
import ssl
import sys
import time
import urllib.error
import urllib.request

url, timeout = sys.argv[1], float(sys.argv[2])
ctx = ssl.create_default_context(cafile=sys.argv[3]) if len(sys.argv) > 3 else None
deadline = time.monotonic() + timeout
while True:
    try:
        urllib.request.urlopen(url, timeout=5, context=ctx)
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)  # any HTTP answer means it is up
    except Exception as exc:  # connection refused, reset, timeout
        if time.monotonic() > deadline:
            print(f"{url} did not answer within {timeout:.0f}s: {exc}", file=sys.stderr)
            sys.exit(1)
        time.sleep(0.2)
