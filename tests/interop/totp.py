"""pyotp (PyPI) as an independent TOTP implementation for the HTTP MFA tests.

  python totp.py SECRET_BASE32 [UNIX_TIME ...]  -> the 6-digit code at each time (default:
                                                   now), one per line
  python totp.py --uri OTPAUTH_URI [UNIX_TIME]   -> JSON: what an authenticator app reads
                                                   from the URI, and its code at UNIX_TIME
"""
import json
import sys
import time

import pyotp

args = sys.argv[1:]
if len(args) >= 2 and args[0] == "--uri":
    otp = pyotp.parse_uri(args[1])
    at = int(args[2]) if len(args) > 2 else int(time.time())
    print(json.dumps({
        "type": type(otp).__name__,
        "secret": otp.secret,
        "name": otp.name,
        "issuer": otp.issuer,
        "digits": otp.digits,
        "interval": otp.interval,
        "digest": otp.digest().name,
        "code": otp.at(at),
    }))
elif len(args) >= 1 and not args[0].startswith("-"):
    otp = pyotp.TOTP(args[0])
    for at in args[1:] or [str(int(time.time()))]:
        print(otp.at(int(at)))
else:
    sys.exit("usage: totp.py SECRET_BASE32 [UNIX_TIME ...] | totp.py --uri OTPAUTH_URI [UNIX_TIME]")
