// Peer authorizer for the Portcullis benchmark: what a user would write in Node 20 with
// aws-jwt-verify. A REST API TOKEN authorizer answering an IAM policy, under its own minimal
// Lambda Runtime API loop (plain `http`, no runtime interface client).
//
// Env: AWS_LAMBDA_RUNTIME_API (host:port), JWKS_FILE (public JWKS JSON), JWT_ISSUER, JWT_AUDIENCE.
"use strict";

const fs = require("fs");
const http = require("http");
const { JwtVerifier } = require("aws-jwt-verify");

const [RUNTIME_HOST, RUNTIME_PORT] = process.env.AWS_LAMBDA_RUNTIME_API.split(":");
const BASE = "/2018-06-01/runtime";
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

// --- init: verifier with the JWKS loaded from a local file (no network) ---
function init() {
  const jwks = JSON.parse(fs.readFileSync(process.env.JWKS_FILE, "utf8"));
  const expectedKid = jwks.keys[0].kid;
  const v = JwtVerifier.create({
    issuer: process.env.JWT_ISSUER,
    audience: process.env.JWT_AUDIENCE,
    // Never fetched: the JWKS is put in the cache below. Given so the verifier is well-formed.
    jwksUri: "http://127.0.0.1:9/.well-known/jwks.json",
    customJwtCheck: ({ header, payload }) => {
      if (header.alg !== "EdDSA") throw new Error("alg must be EdDSA");
      if (header.kid !== expectedKid) throw new Error("unknown kid");
      if (payload.token_use !== "access") throw new Error("token_use must be access");
    },
  });
  v.cacheJwks(jwks);
  return v;
}
let verifier;

class Unauthorized extends Error {}

function handler(event) {
  const header = event && event.authorizationToken;
  if (typeof header !== "string" || !header.startsWith("Bearer ")) throw new Unauthorized();
  let claims;
  try {
    // exp, iss, aud, signature, alg vs JWK, kid lookup, customJwtCheck.
    claims = verifier.verifySync(header.slice("Bearer ".length));
  } catch (_e) {
    throw new Unauthorized();
  }
  const sub = claims.sub;
  const resource = event.methodArn.split("/").slice(0, 2).join("/") + "/*";
  return {
    principalId: sub,
    policyDocument: {
      Version: "2012-10-17",
      Statement: [{ Action: "execute-api:Invoke", Effect: "Allow", Resource: resource }],
    },
    context: {
      principalId: sub,
      userId: sub,
      email: claims.email,
      role: claims.role,
      scopes: "",
      authType: "jwt",
    },
  };
}

// --- minimal Runtime API client ---
function request(method, path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: RUNTIME_HOST, port: RUNTIME_PORT, method, path, agent,
        headers: body === undefined ? {} : { "Content-Type": "application/json",
                                             "Content-Length": Buffer.byteLength(body) } },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

async function loop() {
  try {
    verifier = init();
  } catch (e) {
    await request("POST", `${BASE}/init/error`, JSON.stringify({
      errorMessage: String(e && e.message), errorType: "Runtime.InitError" }));
    process.exit(1);
  }
  for (;;) {
    const next = await request("GET", `${BASE}/invocation/next`);
    const id = next.headers["lambda-runtime-aws-request-id"];
    let result;
    try {
      result = handler(JSON.parse(next.body));
    } catch (e) {
      const unauthorized = e instanceof Unauthorized;
      await request("POST", `${BASE}/invocation/${id}/error`, JSON.stringify({
        errorMessage: unauthorized ? "Unauthorized" : String(e && e.message),
        errorType: unauthorized ? "Unauthorized" : "Error",
      }));
      continue;
    }
    await request("POST", `${BASE}/invocation/${id}/response`, JSON.stringify(result));
  }
}

loop().catch((e) => {
  console.error(e);
  process.exit(1);
});
