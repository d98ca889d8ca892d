"""Authlib (with requests) as an OAuth 2.0 client-credentials client of Portcullis: what a
third party would write.

  python oauth_client.py ISSUER CLIENT_ID CLIENT_SECRET AUTH_METHOD SCOPE GATEWAY_URL

AUTH_METHOD: client_secret_basic or client_secret_post (used at the token, introspection and
revocation endpoints alike). SCOPE: space-separated, "" for none. GATEWAY_URL: where
`GET /whoami` sits behind the authorizer (scripts/gateway.py); "" skips that step.

Steps: RFC 8414 metadata from {ISSUER}/.well-known/oauth-authorization-server (its `issuer`
must equal ISSUER exactly), the client-credentials grant, GET {GATEWAY_URL}/whoami with the
Bearer token, introspection (token_type_hint=access_token), revocation (no hint),
introspection again (no hint).
Prints ONE JSON object: metadata_issuer, token_endpoint, token_type, expires_in, scope,
whoami_status, whoami, introspection, revoke_status, introspection_after. Never the access
token or the client secret. Any failure: one line on stderr (no secrets), exit status 1.
"""
import json
import sys

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session

TIMEOUT = 30  # seconds, every request


class Failure(Exception):
    pass


def session(s):
    # Everything is on 127.0.0.1: no proxy, and no ~/.netrc credentials, from the environment.
    s.trust_env = False
    return s


def json_object(resp, what):
    try:
        body = resp.json()
    except ValueError:
        raise Failure(f"{what}: HTTP {resp.status_code}, body is not JSON") from None
    if not isinstance(body, dict):
        raise Failure(f"{what}: HTTP {resp.status_code}, body is not a JSON object")
    return body


def oauth_error(resp, what):
    """A Failure for a non-200 answer: status plus the RFC 6749 error members if any."""
    detail = ""
    try:
        body = resp.json()
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            detail = f": {body['error']}"
            if isinstance(body.get("error_description"), str):
                detail += f" ({body['error_description']})"
    except ValueError:
        pass
    return Failure(f"{what}: HTTP {resp.status_code}{detail}")


def introspect(client, endpoint, token, hint, what):
    resp = client.introspect_token(endpoint, token=token, token_type_hint=hint, timeout=TIMEOUT)
    if resp.status_code != 200:
        raise oauth_error(resp, what)
    body = json_object(resp, what)
    if not isinstance(body.get("active"), bool):
        raise Failure(f"{what}: no boolean `active`")
    return body


def run(issuer, client_id, client_secret, auth_method, scope, gateway_url):
    if auth_method not in ("client_secret_basic", "client_secret_post"):
        raise Failure(f"AUTH_METHOD must be client_secret_basic or client_secret_post, not {auth_method!r}")
    plain = session(requests.Session())

    # RFC 8414: the metadata, and its issuer must be identical to the one we expect (§3.3).
    resp = plain.get(f"{issuer.rstrip('/')}/.well-known/oauth-authorization-server",
                     headers={"accept": "application/json"}, timeout=TIMEOUT)
    if resp.status_code != 200:
        raise Failure(f"metadata: HTTP {resp.status_code}")
    metadata = json_object(resp, "metadata")
    if metadata.get("issuer") != issuer:
        raise Failure(f"metadata: issuer {metadata.get('issuer')!r} is not {issuer!r}")
    endpoints = {}
    for name in ("token_endpoint", "introspection_endpoint", "revocation_endpoint"):
        if not isinstance(metadata.get(name), str):
            raise Failure(f"metadata: no {name}")
        endpoints[name] = metadata[name]

    client = session(OAuth2Session(
        client_id,
        client_secret,
        token_endpoint_auth_method=auth_method,
        # Authlib authenticates at the revocation endpoint with this one (default: basic),
        # at the introspection endpoint with token_endpoint_auth_method.
        revocation_endpoint_auth_method=auth_method,
        scope=scope or None,
        default_timeout=TIMEOUT,
    ))
    try:
        token = client.fetch_token(endpoints["token_endpoint"], grant_type="client_credentials")
    except OAuthError as e:
        raise Failure(f"token: {e.error}" + (f" ({e.description})" if e.description else "")) from None
    except requests.HTTPError as e:
        raise Failure(f"token: HTTP {e.response.status_code}") from None
    access_token = token.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise Failure("token: no access_token in the answer")

    whoami_status, whoami = None, None
    if gateway_url:
        resp = plain.get(f"{gateway_url.rstrip('/')}/whoami",
                         headers={"authorization": f"Bearer {access_token}"}, timeout=TIMEOUT)
        whoami_status = resp.status_code
        try:
            whoami = resp.json()
        except ValueError:
            whoami = None

    introspection = introspect(client, endpoints["introspection_endpoint"], access_token,
                               "access_token", "introspection")
    resp = client.revoke_token(endpoints["revocation_endpoint"], token=access_token,
                               timeout=TIMEOUT)
    if resp.status_code != 200:
        raise oauth_error(resp, "revocation")
    revoke_status = resp.status_code
    introspection_after = introspect(client, endpoints["introspection_endpoint"], access_token,
                                     None, "introspection after revocation")

    return {
        "metadata_issuer": metadata["issuer"],
        "token_endpoint": endpoints["token_endpoint"],
        "token_type": token.get("token_type"),
        "expires_in": token.get("expires_in"),
        "scope": token.get("scope"),
        "whoami_status": whoami_status,
        "whoami": whoami,
        "introspection": introspection,
        "revoke_status": revoke_status,
        "introspection_after": introspection_after,
    }


def main():
    if len(sys.argv) != 7:
        print("usage: oauth_client.py ISSUER CLIENT_ID CLIENT_SECRET AUTH_METHOD SCOPE GATEWAY_URL",
              file=sys.stderr)
        return 1
    try:
        out = run(*sys.argv[1:])
    except Failure as e:
        print(f"oauth_client.py: {e}", file=sys.stderr)
        return 1
    except requests.RequestException as e:
        # Exception text names URLs, never bodies or headers.
        print(f"oauth_client.py: request failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except ValueError as e:  # Authlib: a token answer that is not a JSON object
        print(f"oauth_client.py: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
