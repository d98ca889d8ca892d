// panva/openid-client (v6) as an OAuth 2.0 client-credentials client of Portcullis: what a
// third party would write.
//
//   node oauth_client.mjs ISSUER CLIENT_ID CLIENT_SECRET AUTH_METHOD SCOPE GATEWAY_URL
//
// AUTH_METHOD: client_secret_basic or client_secret_post (used at the token, introspection
// and revocation endpoints alike). SCOPE: space-separated, "" for none. GATEWAY_URL: where
// `GET /whoami` sits behind the authorizer (scripts/gateway.py); "" skips that step.
//
// Steps: discovery (the default "oidc" algorithm: {ISSUER}/.well-known/openid-configuration,
// whose `issuer` must match ISSUER), the client-credentials grant, GET {GATEWAY_URL}/whoami
// with the Bearer token, introspection (token_type_hint=access_token), revocation (no hint),
// introspection again (no hint). Plain http is allowed (allowInsecureRequests): 127.0.0.1.
// Prints ONE JSON object: metadata_issuer, token_endpoint, token_type, expires_in, scope,
// whoami_status, whoami, introspection, revoke_status, introspection_after. Never the access
// token or the client secret. Any failure: one line on stderr (no secrets), exit status 1.
import * as client from 'openid-client'

const TIMEOUT = 30 // seconds, every request

async function describe (err) {
  // Only the error's kind, code and the server's RFC 6749 error members: an error's `cause`
  // may hold a whole response body (a token answer, say), so it is never printed.
  if (err instanceof client.ResponseBodyError) {
    const desc = err.error_description ? ` (${err.error_description})` : ''
    return `HTTP ${err.status}: ${err.error}${desc}`
  }
  if (err instanceof client.WWWAuthenticateChallengeError) {
    const challenges = (err.cause || [])
      .map((c) => c.scheme + (c.parameters?.error ? ` error=${c.parameters.error}` : ''))
      .join(', ')
    let body = ''
    try {
      const json = await err.response.json()
      if (typeof json?.error === 'string') {
        body = `: ${json.error}` + (json.error_description ? ` (${json.error_description})` : '')
      }
    } catch {}
    return `HTTP ${err.status} WWW-Authenticate ${challenges}${body}`
  }
  const code = err?.code ? ` [${err.code}]` : ''
  if (err instanceof client.ClientError && err.cause?.attribute === 'issuer') {
    return `${err.message}${code}: expected ${err.cause.expected}, got ${err.cause.body?.issuer}`
  }
  const cause = err?.cause instanceof Error ? `: ${err.cause.message}` : ''
  return `${err?.name ?? 'Error'}${code}: ${err?.message}${cause}`
}

async function step (what, fn) {
  try {
    return await fn()
  } catch (err) {
    throw new Error(`${what}: ${await describe(err)}`)
  }
}

async function run ([issuer, clientId, clientSecret, authMethod, scope, gatewayUrl]) {
  const auth = {
    client_secret_basic: client.ClientSecretBasic,
    client_secret_post: client.ClientSecretPost
  }[authMethod]
  if (!auth) {
    throw new Error(`AUTH_METHOD must be client_secret_basic or client_secret_post, not ${JSON.stringify(authMethod)}`)
  }
  const config = await step('discovery', () =>
    client.discovery(new URL(issuer), clientId, undefined, auth(clientSecret), {
      execute: [client.allowInsecureRequests],
      timeout: TIMEOUT
    }))
  const metadata = config.serverMetadata()

  const tokens = await step('token', () =>
    client.clientCredentialsGrant(config, scope ? { scope } : {}))

  let whoamiStatus = null
  let whoami = null
  if (gatewayUrl) {
    const resp = await step('whoami', () =>
      fetch(`${gatewayUrl.replace(/\/$/, '')}/whoami`, {
        headers: { authorization: `Bearer ${tokens.access_token}` },
        signal: AbortSignal.timeout(TIMEOUT * 1000)
      }))
    whoamiStatus = resp.status
    try {
      whoami = await resp.json()
    } catch {
      whoami = null
    }
  }

  const introspection = await step('introspection', () =>
    client.tokenIntrospection(config, tokens.access_token, { token_type_hint: 'access_token' }))
  await step('revocation', () => client.tokenRevocation(config, tokens.access_token))
  const introspectionAfter = await step('introspection after revocation', () =>
    client.tokenIntrospection(config, tokens.access_token))

  return {
    metadata_issuer: metadata.issuer,
    token_endpoint: metadata.token_endpoint,
    token_type: tokens.token_type, // openid-client lower-cases it: "bearer"
    expires_in: tokens.expires_in ?? null,
    scope: tokens.scope ?? null,
    whoami_status: whoamiStatus,
    whoami,
    introspection,
    revoke_status: 200, // tokenRevocation resolves only on a 200
    introspection_after: introspectionAfter
  }
}

const args = process.argv.slice(2)
if (args.length !== 6) {
  console.error('usage: oauth_client.mjs ISSUER CLIENT_ID CLIENT_SECRET AUTH_METHOD SCOPE GATEWAY_URL')
  process.exit(1)
}
try {
  const out = await run(args)
  process.stdout.write(JSON.stringify(out) + '\n')
} catch (err) {
  console.error(`oauth_client.mjs: ${err.message}`)
  process.exit(1)
}
