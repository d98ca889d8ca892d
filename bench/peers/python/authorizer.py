"""Peer authorizer for the Portcullis benchmark: what a user would write in Python 3.11 with
PyJWT (+ cryptography for EdDSA). A REST API TOKEN authorizer answering an IAM policy, under
its own minimal Lambda Runtime API loop (http.client, no runtime interface client).

Env: AWS_LAMBDA_RUNTIME_API (host:port), JWKS_FILE (public JWKS JSON), JWT_ISSUER, JWT_AUDIENCE.
"""

import http.client
import json
import os
import sys

import jwt

BASE = "/2018-06-01/runtime"


class Unauthorized(Exception):
    pass


def init():
    with open(os.environ["JWKS_FILE"], encoding="utf-8") as f:
        jwks = jwt.PyJWKSet.from_dict(json.load(f))
    return {k.key_id: k for k in jwks.keys}, os.environ["JWT_ISSUER"], os.environ["JWT_AUDIENCE"]


def handler(event, keys, issuer, audience):
    header = event.get("authorizationToken") if isinstance(event, dict) else None
    if not isinstance(header, str) or not header.startswith("Bearer "):
        raise Unauthorized()
    token = header[len("Bearer "):]
    try:
        unverified = jwt.get_unverified_header(token)
        if unverified.get("alg") != "EdDSA":
            raise Unauthorized()
        key = keys.get(unverified.get("kid"))
        if key is None:
            raise Unauthorized()
        claims = jwt.decode(
            token,
            key.key,
            algorithms=["EdDSA"],
            issuer=issuer,
            audience=audience,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError:
        raise Unauthorized() from None
    if claims.get("token_use") != "access":
        raise Unauthorized()
    sub = claims["sub"]
    resource = "/".join(event["methodArn"].split("/")[:2]) + "/*"
    return {
        "principalId": sub,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resource}],
        },
        "context": {
            "principalId": sub,
            "userId": sub,
            "email": claims.get("email"),
            "role": claims.get("role"),
            "scopes": "",
            "authType": "jwt",
        },
    }


def main():
    host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
    conn = http.client.HTTPConnection(host, int(port))

    def post(path, body):
        data = json.dumps(body).encode()
        conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
        conn.getresponse().read()

    try:
        keys, issuer, audience = init()
    except Exception as e:  # report init failures the Lambda way
        post(f"{BASE}/init/error", {"errorMessage": str(e), "errorType": "Runtime.InitError"})
        sys.exit(1)

    while True:
        conn.request("GET", f"{BASE}/invocation/next")
        resp = conn.getresponse()
        body = resp.read()
        request_id = resp.getheader("Lambda-Runtime-Aws-Request-Id")
        try:
            result = handler(json.loads(body), keys, issuer, audience)
        except Unauthorized:
            post(f"{BASE}/invocation/{request_id}/error",
                 {"errorMessage": "Unauthorized", "errorType": "Unauthorized"})
            continue
        except Exception as e:
            post(f"{BASE}/invocation/{request_id}/error",
                 {"errorMessage": str(e), "errorType": type(e).__name__})
            continue
        post(f"{BASE}/invocation/{request_id}/response", result)


if __name__ == "__main__":
    main()
