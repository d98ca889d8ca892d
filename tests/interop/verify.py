"""PyJWT against Portcullis, using only what a third party would have.

  python verify.py verify JWKS_FILE TOKEN ISSUER AUDIENCE  -> prints the verified payload
  python verify.py sign PRIVATE_JWK_FILE CLAIMS_FILE        -> prints a compact JWS
"""
import json
import sys

import jwt
from jwt import PyJWK

mode, *args = sys.argv[1:]
if mode == "verify":
    jwks_file, token, issuer, audience = args
    jwks = jwt.PyJWKSet.from_json(open(jwks_file).read())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    payload = jwt.decode(token, key, algorithms=["EdDSA", "ES256"], issuer=issuer, audience=audience)
    print(json.dumps({"payload": payload, "alg": key.algorithm_name, "kid": kid}))
elif mode == "sign":
    jwk_file, claims_file = args
    jwk = json.load(open(jwk_file))
    key = PyJWK(jwk, algorithm=jwk["alg"])
    claims = json.load(open(claims_file))
    print(jwt.encode(claims, key, algorithm=jwk["alg"], headers={"kid": jwk["kid"]}))
else:
    sys.exit("usage: verify.py verify|sign ...")
