// panva/jose against Portcullis, using only what a third party would have.
//   node verify.mjs verify JWKS_FILE TOKEN ISSUER AUDIENCE  -> prints the verified payload
//   node verify.mjs sign PRIVATE_JWK_FILE CLAIMS_FILE        -> prints a compact JWS
import { readFileSync } from "node:fs";
import { createLocalJWKSet, importJWK, jwtVerify, SignJWT } from "jose";

const [mode, ...args] = process.argv.slice(2);
if (mode === "verify") {
  const [jwksFile, token, issuer, audience] = args;
  const jwks = createLocalJWKSet(JSON.parse(readFileSync(jwksFile, "utf8")));
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer,
    audience,
    algorithms: ["EdDSA", "ES256"],
  });
  console.log(JSON.stringify({ payload, alg: protectedHeader.alg, kid: protectedHeader.kid }));
} else if (mode === "sign") {
  const [jwkFile, claimsFile] = args;
  const jwk = JSON.parse(readFileSync(jwkFile, "utf8"));
  const key = await importJWK(jwk, jwk.alg);
  const claims = JSON.parse(readFileSync(claimsFile, "utf8"));
  const token = await new SignJWT(claims).setProtectedHeader({ alg: jwk.alg, kid: jwk.kid, typ: "JWT" }).sign(key);
  console.log(token);
} else {
  console.error("usage: verify.mjs verify|sign ...");
  process.exit(2);
}
