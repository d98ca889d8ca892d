// A person signing in to a third-party site through Portcullis, in real headless Chromium
// (Debian's, driven by playwright-core), with panva/openid-client (v6) as the relying party:
// browser sign-in, consent, the OAuth 2.0 authorization code grant with PKCE (S256), OpenID
// Connect (nonce, id_token, userinfo), refresh, replays, CSRF, framing and sign-out.
//
//   node browser_flow.mjs        (every input comes from the environment: secrets stay out of argv)
//
// Environment:
//   PORTCULLIS_ISSUER               the issuer; discovery at {ISSUER}/.well-known/openid-configuration
//   PORTCULLIS_WEB_BASE             https://HOST:PORT/lambda-url/web: the sign-in and consent pages
//   PORTCULLIS_GATEWAY_URL          where `GET /whoami` sits behind the authorizer ("" skips it)
//   PORTCULLIS_RP_PORT              the relying party's port on 127.0.0.1; both clients are
//                                   registered with redirect_uri http://127.0.0.1:PORT/callback
//   PORTCULLIS_CLIENT_ID            the confidential client (authorization_code + refresh_token)
//   PORTCULLIS_CLIENT_SECRET        its secret (client_secret_basic)
//   PORTCULLIS_CLIENT_NAME          its display name, expected in the consent page's heading
//   PORTCULLIS_PUBLIC_CLIENT_ID     the public client (no secret: token_endpoint_auth_method none)
//   PORTCULLIS_PUBLIC_CLIENT_NAME   its display name
//   PORTCULLIS_USER_EMAIL           an existing user who has not yet consented to either client
//   PORTCULLIS_USER_PASSWORD        that user's password
//   PORTCULLIS_SCREENSHOT_DIR       where the PNGs go (made if missing)
//   PORTCULLIS_CHROMIUM             the browser (default /usr/bin/chromium); optional
//   PORTCULLIS_TEST_SECRETS_FILE    optional: every token, code, cookie value and verifier this
//                                   script sees is appended there (one per line), so the
//                                   suite's log scan fails if the server ever logs one
//
// Steps (each one's findings are recorded under its own key):
//   1 signin      discovery; the authorization URL for the confidential client; no session,
//                 so the browser lands on the sign-in page; a wrong password first (401 and an
//                 alert), then the right one; the cookies' attributes
//   2 consent     the consent page (anti-framing headers, client name, scopes); Allow
//   3 code_flow   the RP's /callback exchanged the code: id_token claims, userinfo, refresh
//                 (rotated), GET {gateway}/whoami with the new access token;
//                 remembered_consent: a second authorize goes straight back to the RP
//   4 replay      the same callback URL again, and the spent refresh token: invalid_grant
//   5 public_client  Deny first (access_denied), then Allow; the exchange without a secret;
//                 framing: the consent page inside an iframe, cross-site (the RP's /frame) and
//                 same-origin, must not render
//   6 csrf        POST /auth/signin without and with a wrong csrf field: 403, no session cookie
//   7 signout     the Sign out button (then the sign-in page shows the form again); the old
//                 session cookie replayed in a new context: the form, and authorize sends it there
//
// Prints ONE JSON line on stdout: the findings (booleans, statuses, claim names, error codes,
// never a token, code, cookie value, secret or password) and `screenshots`. On a failed
// expectation: the same line with ok=false, failed_step and error, the message on stderr,
// exit status 1.
import { appendFileSync, mkdirSync } from 'node:fs'
import http from 'node:http'
import { join, resolve } from 'node:path'
import * as client from 'openid-client'
import { chromium } from 'playwright-core'

const TIMEOUT = 30 // seconds, every request of the RP and every browser action
const NAVIGATION_TIMEOUT = 60_000 // ms: a function's first request may start it cold
const WATCHDOG = 240_000 // ms: the whole run
const SCOPE = 'openid email profile:read'
const SESSION_COOKIE = '__Host-portcullis-session'
const CSRF_COOKIE = '__Host-portcullis-csrf'
const PRESESSION_COOKIE = '__Host-portcullis-signin'

// ---- secrets: noted for the suite's log scan, and never printed ----------------------------

const secretsFile = process.env.PORTCULLIS_TEST_SECRETS_FILE
const secrets = new Set()

function remember (value) {
  if (typeof value !== 'string' || !value || secrets.has(value)) return value
  secrets.add(value)
  if (secretsFile) {
    const lines = value.split('\n').filter(Boolean).map((l) => `${l}\n`).join('')
    appendFileSync(secretsFile, lines) // one append: whole lines, even with other writers
  }
  return value
}

function redact (text) {
  let out = String(text)
  for (const s of secrets) if (s.length >= 6) out = out.split(s).join('[redacted]')
  return out
}

// ---- inputs ---------------------------------------------------------------------------------

function input (name, { optional = false, secret = false } = {}) {
  const value = process.env[name]
  if (value === undefined || (value === '' && !optional)) {
    if (optional) return ''
    throw new Error(`${name} is not set`)
  }
  return secret ? remember(value) : value
}

// ---- failures -------------------------------------------------------------------------------

class Expectation extends Error {}

function expect (condition, message) {
  if (!condition) throw new Expectation(message)
}

/**
 * An error's code, for the report: the OAuth `error` when there is one, else the library's
 * code, with the HTTP status and the body's `error` member of an answer it could not take (a
 * 5xx, say). Never the error's `cause` as such: it may hold a whole response body.
 */
async function errorCode (err) {
  if (err instanceof client.ResponseBodyError || err instanceof client.AuthorizationResponseError) {
    return err.error
  }
  if (err instanceof client.WWWAuthenticateChallengeError) {
    return `www-authenticate ${err.status}`
  }
  const code = err?.code ?? err?.name ?? 'error'
  const response = err?.cause
  if (response instanceof Response) {
    let error = ''
    if (response.status >= 400) { // an error answer carries no token
      try {
        const body = await response.clone().json()
        if (typeof body?.error === 'string') error = ` error=${body.error}`
      } catch {}
    }
    return `${code} (HTTP ${response.status}${error})`
  }
  return code
}

function describe (err) {
  if (err instanceof Expectation) return err.message
  if (err instanceof client.ResponseBodyError) {
    return `HTTP ${err.status}: ${err.error}${err.error_description ? ` (${err.error_description})` : ''}`
  }
  if (err instanceof client.AuthorizationResponseError) {
    return `authorization response error=${err.error}${err.error_description ? ` (${err.error_description})` : ''}`
  }
  const code = err?.code ? ` [${err.code}]` : ''
  const cause = err?.cause instanceof Error ? `: ${err.cause.message}` : ''
  return `${err?.name ?? 'Error'}${code}: ${err?.message}${cause}`
}

// ---- small helpers --------------------------------------------------------------------------

const html = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

function pathOf (url) {
  // Paths only: query strings carry codes and states.
  try {
    const u = new URL(url)
    return u.protocol.startsWith('http') ? `${u.origin}${u.pathname}` : `${u.protocol}//${u.host}`
  } catch {
    return '?'
  }
}

function isJwt (token) {
  return typeof token === 'string' && /^[\w-]+\.[\w-]+\.[\w-]*$/.test(token)
}

function withTimeout (promise, ms, what) {
  let timer
  return Promise.race([
    promise,
    new Promise((_resolve, reject) => {
      timer = setTimeout(() => reject(new Expectation(`${what}: nothing after ${ms / 1000}s`)), ms)
    })
  ]).finally(() => clearTimeout(timer))
}

/** The redirects that led to a navigation's final response: [{url (path only), status}]. */
async function chain (response) {
  const hops = []
  let req = response.request().redirectedFrom()
  while (req) {
    const r = await req.response()
    hops.unshift({ url: pathOf(req.url()), method: req.method(), status: r ? r.status() : null })
    req = req.redirectedFrom()
  }
  return hops
}

/** Run `action` and wait for the main frame's next final (non-redirect) document response. */
async function navigation (page, action) {
  const done = page.waitForResponse(
    (r) => {
      try {
        return r.request().isNavigationRequest() && r.frame() === page.mainFrame() &&
          !(r.status() >= 300 && r.status() < 400)
      } catch {
        return false
      }
    },
    { timeout: NAVIGATION_TIMEOUT })
  await action()
  const response = await done
  await page.waitForLoadState('load', { timeout: NAVIGATION_TIMEOUT })
  return response
}

function cookieFacts (cookie) {
  if (!cookie) return null
  return {
    httpOnly: cookie.httpOnly,
    secure: cookie.secure,
    sameSite: cookie.sameSite,
    path: cookie.path,
    // A Domain attribute shows as a leading dot; a __Host- cookie with one would be refused.
    hostOnly: !cookie.domain.startsWith('.'),
    persistent: cookie.expires !== -1
  }
}

async function cookieNamed (context, url, name) {
  const found = (await context.cookies(url)).find((c) => c.name === name)
  if (found) remember(found.value)
  return found
}

function setCookieNames (response) {
  return response.headersArray()
    .filter((h) => h.name.toLowerCase() === 'set-cookie')
    .map((h) => h.value.split('=')[0].trim())
}

// ---- the relying party: openid-client behind a tiny HTTP server ----------------------------

function relyingParty (port) {
  const origin = `http://127.0.0.1:${port}`
  const pending = new Map() // state -> the flow that waits for it
  let unexpected = 0

  function begin (config, label) {
    const verifier = remember(client.randomPKCECodeVerifier())
    const state = client.randomState()
    const nonce = client.randomNonce()
    let settle
    const done = new Promise((resolve) => { settle = resolve })
    return {
      label,
      state,
      nonce,
      verifier,
      done,
      settle,
      config,
      async url () {
        const challenge = await client.calculatePKCECodeChallenge(verifier)
        pending.set(state, this)
        return client.buildAuthorizationUrl(config, {
          redirect_uri: `${origin}/callback`,
          scope: SCOPE,
          state,
          nonce,
          code_challenge: challenge,
          code_challenge_method: 'S256'
        }).href
      }
    }
  }

  function checks (flow) {
    return {
      pkceCodeVerifier: flow.verifier,
      expectedState: flow.state,
      expectedNonce: flow.nonce,
      idTokenExpected: true
    }
  }

  async function callback (req, res, current) {
    const flow = pending.get(current.searchParams.get('state'))
    if (!flow) {
      unexpected += 1
      res.writeHead(400, { 'content-type': 'text/html; charset=utf-8' })
      res.end('<!doctype html><title>RP</title><h1>Unexpected callback</h1>')
      return
    }
    pending.delete(flow.state)
    remember(current.searchParams.get('code'))
    const params = {
      has_code: current.searchParams.has('code'),
      iss: current.searchParams.get('iss'),
      error: current.searchParams.get('error')
    }
    try {
      const tokens = await client.authorizationCodeGrant(flow.config, current, checks(flow))
      for (const t of [tokens.access_token, tokens.refresh_token, tokens.id_token]) remember(t)
      const claims = tokens.claims()
      flow.settle({ ok: true, tokens, claims, callbackUrl: current, params })
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      res.end(`<!doctype html><title>Test RP</title><h1>Test RP</h1><p id="who">Signed in as ${html(claims?.sub)}</p>`)
    } catch (err) {
      const code = await errorCode(err)
      flow.settle({ ok: false, error: code, detail: redact(`${code}: ${describe(err)}`), callbackUrl: current, params })
      res.writeHead(400, { 'content-type': 'text/html; charset=utf-8' })
      res.end(`<!doctype html><title>Test RP</title><h1>Test RP</h1><p id="error">Sign-in failed: ${html(code)}</p>`)
    }
  }

  const frameSources = new Map() // id -> URL to frame
  const server = http.createServer((req, res) => {
    const current = new URL(req.url, origin)
    if (req.method === 'GET' && current.pathname === '/callback') {
      callback(req, res, current).catch(() => { res.statusCode = 500; res.end() })
      return
    }
    const src = current.pathname === '/frame' && frameSources.get(current.searchParams.get('id'))
    if (req.method === 'GET' && src) {
      // What a hostile site would do: the consent page, in a frame of its own page.
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      res.end(`<!doctype html><title>Framing</title><h1>A page on another site</h1>
<iframe id="victim" src="${html(src)}" width="900" height="600"></iframe>`)
      return
    }
    res.writeHead(404, { 'content-type': 'text/plain' })
    res.end('not found')
  })

  return {
    origin,
    begin,
    checks,
    frame (url) {
      const id = String(frameSources.size + 1)
      frameSources.set(id, url)
      return `${origin}/frame?id=${id}`
    },
    get unexpected () { return unexpected },
    listen: () => new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', resolve)
    }),
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()) })
  }
}

// ---- the flow -------------------------------------------------------------------------------

const report = { ok: false }
const screenshots = []
let currentStep = 'inputs'
let page = null

async function shot (target, name, dir) {
  const path = resolve(join(dir, name))
  await target.screenshot({ path, fullPage: true })
  screenshots.push(path)
  return path
}

async function step (name, fn) {
  currentStep = name
  return await fn()
}

async function hasSignedIn (p) {
  return (await p.getByText(/signed in as/i).count()) > 0
}

async function showsSigninForm (p) {
  return await p.getByLabel('Email').isVisible() && await p.getByLabel('Password').isVisible()
}

/** Whether a frame shows the consent form; a frame Chromium refused to render has none. */
async function consentFormIn (frame) {
  try {
    return (await frame.locator('button[name="decision"]').count()) > 0
  } catch {
    return false
  }
}

/**
 * Open `pageUrl` (whose document frames `framedUrl`) in a new page of `context` and report
 * what the frame became: its final response, its URL (path only) and whether the consent
 * form rendered in it.
 */
async function framingProbe (context, pageUrl, framedUrl, screenshot, dir, route) {
  const probe = await context.newPage()
  try {
    if (route) await probe.route(pageUrl, route)
    const framed = []
    probe.on('response', (r) => {
      try {
        if (r.frame() !== probe.mainFrame() && r.url().split('?')[0] === framedUrl.split('?')[0]) {
          const h = r.headers()
          framed.push({ status: r.status(), x_frame_options: h['x-frame-options'] ?? null, csp: h['content-security-policy'] ?? null })
        }
      } catch {}
    })
    const blocked = []
    probe.on('console', (m) => {
      if (/frame|frame-ancestors|X-Frame-Options/i.test(m.text())) blocked.push(m.text())
    })
    await probe.goto(pageUrl, { waitUntil: 'load', timeout: NAVIGATION_TIMEOUT })
    const child = probe.frames().find((f) => f !== probe.mainFrame())
    expect(child, `framing ${pageUrl}: the page has no iframe`)
    await child.waitForLoadState('load', { timeout: NAVIGATION_TIMEOUT }).catch(() => {})
    const seen = {
      framed_response: framed[0] ?? null,
      frame_url: pathOf(child.url()),
      consent_form_rendered: await consentFormIn(child),
      refusal_logged: blocked.length > 0,
      screenshot: await shot(probe, screenshot, dir)
    }
    return seen
  } finally {
    await probe.close()
  }
}

async function run () {
  const issuer = input('PORTCULLIS_ISSUER')
  const webBase = input('PORTCULLIS_WEB_BASE').replace(/\/$/, '')
  const gateway = input('PORTCULLIS_GATEWAY_URL', { optional: true }).replace(/\/$/, '')
  const rpPort = Number(input('PORTCULLIS_RP_PORT'))
  const clientId = input('PORTCULLIS_CLIENT_ID')
  const clientSecret = input('PORTCULLIS_CLIENT_SECRET', { secret: true })
  const clientName = input('PORTCULLIS_CLIENT_NAME')
  const publicId = input('PORTCULLIS_PUBLIC_CLIENT_ID')
  const publicName = input('PORTCULLIS_PUBLIC_CLIENT_NAME')
  const email = input('PORTCULLIS_USER_EMAIL')
  const password = input('PORTCULLIS_USER_PASSWORD', { secret: true })
  const dir = input('PORTCULLIS_SCREENSHOT_DIR')
  const executablePath = process.env.PORTCULLIS_CHROMIUM || '/usr/bin/chromium'
  expect(Number.isInteger(rpPort) && rpPort > 0, 'PORTCULLIS_RP_PORT must be a port number')
  const wrongPassword = remember(`not-${client.randomState()}`)
  mkdirSync(dir, { recursive: true })
  const signinUrl = `${webBase}/auth/signin`
  const authorizeUrl = `${webBase}/oauth/authorize`
  const options = { execute: [client.allowInsecureRequests], timeout: TIMEOUT }

  const rp = relyingParty(rpPort)
  await rp.listen()
  const browser = await chromium.launch({ executablePath, headless: true, timeout: NAVIGATION_TIMEOUT })
  try {
    const context = await browser.newContext({ ignoreHTTPSErrors: true })
    context.setDefaultTimeout(TIMEOUT * 1000)
    context.setDefaultNavigationTimeout(NAVIGATION_TIMEOUT)
    page = await context.newPage()

    // 1: discovery, the authorization URL, the sign-in page; a wrong password, the right one
    const confidential = await step('discovery', async () => {
      const config = await client.discovery(new URL(issuer), clientId, undefined,
        client.ClientSecretBasic(clientSecret), options)
      const m = config.serverMetadata()
      report.discovery = {
        issuer: m.issuer,
        authorization_endpoint: m.authorization_endpoint,
        token_endpoint: m.token_endpoint,
        userinfo_endpoint: m.userinfo_endpoint ?? null,
        code_challenge_methods_supported: m.code_challenge_methods_supported ?? null,
        authorization_response_iss_parameter_supported: m.authorization_response_iss_parameter_supported ?? null
      }
      expect(m.authorization_endpoint === authorizeUrl,
        `discovery: authorization_endpoint is ${m.authorization_endpoint}, expected ${authorizeUrl}`)
      expect(m.code_challenge_methods_supported?.includes('S256'), 'discovery: S256 is not in code_challenge_methods_supported')
      expect(m.authorization_response_iss_parameter_supported === true,
        'discovery: authorization_response_iss_parameter_supported is not true')
      return config
    })

    const first = rp.begin(confidential, 'confidential')
    let consentResponse = await step('signin', async () => {
      const landed = await page.goto(await first.url())
      const hops = await chain(landed)
      const returnTo = new URL(page.url()).searchParams.get('return_to')
      report.signin = {
        authorize_redirect: hops[0] ?? null,
        landed_on: pathOf(page.url()),
        status: landed.status(),
        return_to_present: !!returnTo,
        presession_cookie: cookieFacts(await cookieNamed(context, signinUrl, PRESESSION_COOKIE))
      }
      expect(hops[0]?.status === 303 && pathOf(page.url()) === signinUrl,
        `signin: without a session, authorize should 303 to ${signinUrl}; got ${JSON.stringify(hops)} ending at ${pathOf(page.url())} (${landed.status()})`)
      expect(returnTo, 'signin: the redirect to the sign-in page carries no return_to')
      expect(report.signin.presession_cookie, `signin: the sign-in page set no ${PRESESSION_COOKIE} cookie`)
      expect(await showsSigninForm(page), 'signin: no Email/Password form')
      await shot(page, 'signin.png', dir)

      await page.getByLabel('Email').fill(email)
      await page.getByLabel('Password').fill(wrongPassword)
      const refused = await navigation(page, () => page.getByRole('button', { name: 'Sign in', exact: true }).click())
      const alert = page.getByRole('alert').first()
      const alertVisible = await alert.isVisible().catch(() => false)
      report.signin.wrong_password_status = refused.status()
      report.signin.alert_visible = alertVisible
      report.signin.alert_text = alertVisible ? (await alert.innerText()).trim() : null
      report.signin.session_cookie_after_wrong_password = !!(await cookieNamed(context, signinUrl, SESSION_COOKIE))
      expect(refused.status() === 401, `signin: a wrong password answered ${refused.status()}, expected 401`)
      expect(alertVisible && report.signin.alert_text, 'signin: no visible, non-empty role=alert after a wrong password')
      expect(!report.signin.session_cookie_after_wrong_password, 'signin: a wrong password set a session cookie')
      await shot(page, 'signin-error.png', dir)

      await page.getByLabel('Email').fill(email)
      await page.getByLabel('Password').fill(password)
      const consent = await navigation(page, () => page.getByRole('button', { name: 'Sign in', exact: true }).click())
      report.signin.success_redirects = await chain(consent)
      expect(report.signin.success_redirects[0]?.status === 303,
        `signin: the right password should answer 303; got ${JSON.stringify(report.signin.success_redirects)} then ${consent.status()}`)

      const session = await cookieNamed(context, signinUrl, SESSION_COOKIE)
      const csrf = await cookieNamed(context, signinUrl, CSRF_COOKIE)
      report.cookies = { session: cookieFacts(session), csrf: cookieFacts(csrf) }
      expect(session, `signin: no ${SESSION_COOKIE} cookie after signing in`)
      expect(csrf, `signin: no ${CSRF_COOKIE} cookie after signing in`)
      const s = report.cookies.session
      expect(s.httpOnly && s.secure && s.sameSite === 'Lax' && s.path === '/' && s.hostOnly,
        `cookies: ${SESSION_COOKIE} must be HttpOnly, Secure, SameSite=Lax, Path=/, host-only: ${JSON.stringify(s)}`)
      const c = report.cookies.csrf
      expect(!c.httpOnly && c.secure && c.sameSite === 'Lax' && c.path === '/' && c.hostOnly,
        `cookies: ${CSRF_COOKIE} must be Secure, SameSite=Lax, Path=/, host-only and NOT HttpOnly: ${JSON.stringify(c)}`)
      return consent
    })

    // 2: the consent page, and Allow
    const allowed = await step('consent', async () => {
      report.consent = await consentFacts(page, consentResponse, authorizeUrl, clientName)
      await shot(page, 'consent.png', dir)
      return await navigation(page, () => page.getByRole('button', { name: 'Allow', exact: true }).click())
    })

    // 3: the code exchanged at the RP's /callback; userinfo, refresh, whoami
    const tokens = await step('code_flow', async () => {
      const result = await withTimeout(first.done, NAVIGATION_TIMEOUT, 'code_flow: the RP callback')
      const hops = await chain(allowed)
      report.code_flow = {
        consent_redirect: hops[0] ?? null,
        landed_on: pathOf(page.url()),
        callback_iss: result.params.iss,
        ok: result.ok,
        error: result.ok ? null : result.error
      }
      expect([302, 303].includes(hops[0]?.status), `code_flow: Allow should redirect (302); got ${JSON.stringify(hops)}`)
      expect(pathOf(page.url()) === `${rp.origin}/callback`, `code_flow: the browser ended at ${pathOf(page.url())}, not the RP's /callback`)
      expect(result.ok, `code_flow: the code exchange failed: ${result.detail}`)
      const claims = result.claims
      Object.assign(report.code_flow, {
        callback_has_iss: result.params.iss === issuer,
        id_token_claims: Object.keys(claims ?? {}).sort(),
        sub: claims?.sub ?? null,
        aud_is_client: [claims?.aud].flat().includes(clientId),
        iss_matches: claims?.iss === issuer,
        nonce_matched: claims?.nonce === first.nonce,
        auth_time_present: Number.isInteger(claims?.auth_time),
        token_type: result.tokens.token_type,
        scope: result.tokens.scope ?? null,
        expires_in: result.tokens.expires_in ?? null,
        access_token_is_jwt: isJwt(result.tokens.access_token),
        has_refresh_token: typeof result.tokens.refresh_token === 'string',
        rp_page: (await page.locator('#who').innerText()).replace(claims?.sub ?? '', '<sub>')
      })
      const f = report.code_flow
      expect(f.callback_has_iss, `code_flow: the redirect's iss is ${JSON.stringify(result.params.iss)}, expected the issuer`)
      expect(f.sub, 'code_flow: the id_token has no sub')
      expect(f.aud_is_client && f.iss_matches, 'code_flow: the id_token aud/iss do not match the client/issuer')
      expect(f.nonce_matched, 'code_flow: the id_token nonce does not match')
      expect(f.auth_time_present, 'code_flow: the id_token has no auth_time')
      expect(f.access_token_is_jwt, 'code_flow: the access token is not a JWT')
      expect(f.has_refresh_token, 'code_flow: no refresh token')
      expect(f.rp_page === 'Signed in as <sub>', `code_flow: the RP page says ${JSON.stringify(f.rp_page)}`)
      return { first: result.tokens, sub: claims.sub, callbackUrl: result.callbackUrl }
    })

    await step('userinfo', async () => {
      const info = await client.fetchUserInfo(confidential, tokens.first.access_token, tokens.sub)
      report.userinfo = { sub_matches: info.sub === tokens.sub, email: info.email ?? null, claims: Object.keys(info).sort() }
      expect(report.userinfo.email === email, `userinfo: email is ${JSON.stringify(info.email)}, expected ${email}`)

      currentStep = 'refresh'
      const next = await client.refreshTokenGrant(confidential, tokens.first.refresh_token)
      for (const t of [next.access_token, next.refresh_token, next.id_token]) remember(t)
      report.refresh = {
        access_changed: next.access_token !== tokens.first.access_token,
        refresh_changed: typeof next.refresh_token === 'string' && next.refresh_token !== tokens.first.refresh_token,
        access_token_is_jwt: isJwt(next.access_token),
        scope: next.scope ?? null,
        expires_in: next.expires_in ?? null,
        has_id_token: typeof next.id_token === 'string'
      }
      expect(report.refresh.access_changed, 'refresh: the access token did not change')
      expect(report.refresh.refresh_changed, 'refresh: the refresh token was not rotated')

      currentStep = 'whoami'
      if (gateway) {
        const resp = await fetch(`${gateway}/whoami`, {
          headers: { authorization: `Bearer ${next.access_token}` },
          signal: AbortSignal.timeout(TIMEOUT * 1000)
        })
        let body = null
        try { body = await resp.json() } catch {}
        report.whoami = { status: resp.status, principal: body?.data?.principal ?? null }
        expect(resp.status === 200, `whoami: ${resp.status} with the refreshed access token`)
      } else {
        report.whoami = null
      }
    })

    // 3b: the consent is remembered: a second authorize goes straight back to the RP
    await step('remembered_consent', async () => {
      const again = rp.begin(confidential, 'confidential-again')
      const landed = await page.goto(await again.url())
      const result = await withTimeout(again.done, NAVIGATION_TIMEOUT, 'remembered_consent: the RP callback')
      report.remembered_consent = {
        redirects: await chain(landed),
        landed_on: pathOf(page.url()),
        consent_page_shown: pathOf(page.url()) === authorizeUrl,
        exchange_ok: result.ok,
        same_sub: result.claims?.sub === tokens.sub
      }
      if (result.ok) remember(result.tokens.access_token)
      expect(!report.remembered_consent.consent_page_shown, 'remembered_consent: the consent page was shown again')
      expect(result.ok, `remembered_consent: the exchange failed: ${result.detail}`)
    })

    // 4: replays: the same callback (the code is spent) and the first refresh token (spent)
    await step('replay', async () => {
      report.replay = {}
      try {
        await client.authorizationCodeGrant(confidential, tokens.callbackUrl, rp.checks(first))
        report.replay.code_error = null
      } catch (err) {
        report.replay.code_error = await errorCode(err)
      }
      try {
        await client.refreshTokenGrant(confidential, tokens.first.refresh_token)
        report.replay.refresh_error = null
      } catch (err) {
        report.replay.refresh_error = await errorCode(err)
      }
      expect(report.replay.code_error === 'invalid_grant',
        `replay: a spent code answered ${report.replay.code_error ?? 'tokens'}, expected invalid_grant`)
      expect(report.replay.refresh_error === 'invalid_grant',
        `replay: a spent refresh token answered ${report.replay.refresh_error ?? 'tokens'}, expected invalid_grant`)
    })

    // 5: the public client: Deny, then (with framing probes while its consent is due) Allow
    await step('public_client', async () => {
      const config = await client.discovery(new URL(issuer), publicId, undefined, client.None(), options)
      const denied = rp.begin(config, 'public-deny')
      consentResponse = await page.goto(await denied.url())
      report.public_client = { consent: await consentFacts(page, consentResponse, authorizeUrl, publicName) }
      await navigation(page, () => page.getByRole('button', { name: 'Deny', exact: true }).click())
      const refusal = await withTimeout(denied.done, NAVIGATION_TIMEOUT, 'public_client: the RP callback after Deny')
      report.public_client.deny_error = refusal.ok ? null : refusal.error
      report.public_client.deny_iss = refusal.params.iss === issuer
      report.public_client.deny_has_code = refusal.params.has_code
      expect(report.public_client.deny_error === 'access_denied',
        `public_client: Deny gave ${refusal.ok ? 'tokens' : refusal.detail}, expected error=access_denied`)
      expect(!refusal.params.has_code, 'public_client: the Deny redirect carries a code')

      // framing, while a consent is due: a hostile site's frame, and a same-origin one (the
      // session cookie goes along, so only X-Frame-Options / frame-ancestors can stop it)
      currentStep = 'framing'
      const framedFlow = rp.begin(config, 'framed')
      const framedUrl = await framedFlow.url()
      report.framing = {
        cross_site: await framingProbe(context, rp.frame(framedUrl), framedUrl, 'framing-cross-site.png', dir),
        same_origin: await framingProbe(context, `${webBase}/__framing-probe`, framedUrl, 'framing-same-origin.png', dir,
          (route) => route.fulfill({
            status: 200,
            contentType: 'text/html; charset=utf-8',
            body: `<!doctype html><title>Framing</title><iframe id="victim" src="${html(framedUrl)}" width="900" height="600"></iframe>`
          }))
      }
      for (const [where, seen] of Object.entries(report.framing)) {
        expect(!seen.consent_form_rendered, `framing (${where}): the consent form rendered inside a frame: ${JSON.stringify(seen)}`)
      }
      const sameOrigin = report.framing.same_origin.framed_response
      expect(sameOrigin?.status === 200 && /^deny$/i.test(sameOrigin?.x_frame_options ?? ''),
        `framing (same_origin): expected the consent page (200, X-Frame-Options: DENY) to be refused; got ${JSON.stringify(sameOrigin)}`)

      currentStep = 'public_client'
      const allowedFlow = rp.begin(config, 'public-allow')
      consentResponse = await page.goto(await allowedFlow.url())
      report.public_client.consent_again = pathOf(page.url()) === authorizeUrl
      expect(report.public_client.consent_again, `public_client: after a Deny, authorize went to ${pathOf(page.url())}, not the consent page`)
      await navigation(page, () => page.getByRole('button', { name: 'Allow', exact: true }).click())
      const result = await withTimeout(allowedFlow.done, NAVIGATION_TIMEOUT, 'public_client: the RP callback after Allow')
      report.public_client.exchange_ok = result.ok
      expect(result.ok, `public_client: the exchange failed: ${result.detail}`)
      Object.assign(report.public_client, {
        sub_matches: result.claims?.sub === tokens.sub,
        aud_is_client: [result.claims?.aud].flat().includes(publicId),
        nonce_matched: result.claims?.nonce === allowedFlow.nonce,
        token_type: result.tokens.token_type,
        scope: result.tokens.scope ?? null,
        has_refresh_token: typeof result.tokens.refresh_token === 'string'
      })
      expect(report.public_client.sub_matches && report.public_client.aud_is_client,
        'public_client: the id_token sub/aud do not match the user/client')
    })

    // 6: CSRF: a sign-in POST without the csrf field (and with a wrong one), in a fresh context
    // that does hold the pre-session cookie
    await step('csrf', async () => {
      const other = await browser.newContext({ ignoreHTTPSErrors: true })
      try {
        const form = await other.request.get(signinUrl, { timeout: NAVIGATION_TIMEOUT })
        await cookieNamed(other, signinUrl, PRESESSION_COOKIE)
        const post = (fields) => other.request.post(signinUrl, { form: fields, maxRedirects: 0, timeout: NAVIGATION_TIMEOUT })
        const missing = await post({ email, password, return_to: '' })
        const wrong = await post({ email, password, return_to: '', csrf: 'not-the-csrf-token' })
        const setCookies = [...setCookieNames(missing), ...setCookieNames(wrong)]
        report.csrf = {
          form_status: form.status(),
          presession_cookie: !!(await cookieNamed(other, signinUrl, PRESESSION_COOKIE)),
          missing_status: missing.status(),
          missing_content_type: missing.headers()['content-type'] ?? null,
          wrong_status: wrong.status(),
          session_cookie_set: setCookies.includes(SESSION_COOKIE) ||
            !!(await cookieNamed(other, signinUrl, SESSION_COOKIE))
        }
        expect(missing.status() === 403, `csrf: a POST without csrf answered ${missing.status()}, expected 403`)
        expect(wrong.status() === 403, `csrf: a POST with a wrong csrf answered ${wrong.status()}, expected 403`)
        expect(!report.csrf.session_cookie_set, 'csrf: a refused POST set a session cookie')
      } finally {
        await other.close()
      }
    })

    // 7: sign out with the button; the old session cookie replayed in a new context
    await step('signout', async () => {
      const old = await cookieNamed(context, signinUrl, SESSION_COOKIE)
      expect(old, 'signout: no session cookie to sign out of')
      await page.goto(signinUrl)
      const who = page.getByText(/signed in as/i).first()
      report.signout = {
        signed_in_page: await who.isVisible().catch(() => false),
        shows_email: (await who.innerText().catch(() => '')).includes(email)
      }
      expect(report.signout.signed_in_page && report.signout.shows_email,
        `signout: the sign-in page, signed in, does not say "Signed in as ${email}"`)
      await shot(page, 'signed-in.png', dir)
      const after = await navigation(page, () => page.getByRole('button', { name: 'Sign out', exact: true }).click())
      const left = await cookieNamed(context, signinUrl, SESSION_COOKIE)
      Object.assign(report.signout, {
        redirects: await chain(after),
        status: after.status(),
        landed_on: pathOf(page.url()),
        headings: (await page.getByRole('heading').allInnerTexts()).map((t) => t.trim()),
        session_cookie_cleared: !left || left.value !== old.value,
        still_signed_in: await hasSignedIn(page)
      })
      await shot(page, 'signed-out.png', dir)
      expect(after.status() < 400 && !report.signout.still_signed_in,
        `signout: Sign out answered ${after.status()}${report.signout.still_signed_in ? ', still "Signed in as"' : ''}`)
      // the same browser, back on the sign-in page: the form again
      await page.goto(signinUrl)
      report.signout.signin_after_shows_form = await showsSigninForm(page)
      report.signout.signin_after_signed_in = await hasSignedIn(page)
      expect(report.signout.signin_after_shows_form && !report.signout.signin_after_signed_in,
        'signout: after Sign out, the sign-in page does not show the form')

      const replay = await browser.newContext({ ignoreHTTPSErrors: true })
      try {
        const host = new URL(webBase).hostname
        await replay.addCookies([{
          name: SESSION_COOKIE, value: old.value, domain: host, path: '/', secure: true, httpOnly: true, sameSite: 'Lax'
        }])
        report.signout.replay_cookie_installed = !!(await cookieNamed(replay, signinUrl, SESSION_COOKIE))
        expect(report.signout.replay_cookie_installed, 'signout: could not install the old session cookie in a new context')
        const p = await replay.newPage()
        const resp = await p.goto(signinUrl, { timeout: NAVIGATION_TIMEOUT })
        report.signout.replay_status = resp.status()
        report.signout.replay_shows_form = await showsSigninForm(p)
        report.signout.replay_signed_in = await hasSignedIn(p)
        await shot(p, 'signout-replay.png', dir)
        // and the authorize endpoint does not take it either: back to the sign-in page
        const probe = rp.begin(confidential, 'after-signout')
        await p.goto(await probe.url(), { timeout: NAVIGATION_TIMEOUT })
        report.signout.replay_authorize_lands_on = pathOf(p.url())
        expect(report.signout.replay_shows_form && !report.signout.replay_signed_in,
          'signout: the old session cookie still signs the browser in')
        expect(report.signout.replay_authorize_lands_on === signinUrl,
          `signout: authorize with the old session cookie went to ${report.signout.replay_authorize_lands_on}`)
      } finally {
        await replay.close()
      }
    })

    report.rp_unexpected_callbacks = rp.unexpected
    expect(rp.unexpected === 0, `the RP got ${rp.unexpected} callback(s) with an unknown state (a framed consent went through?)`)
    report.ok = true
  } finally {
    if (!report.ok && page) {
      try { await shot(page, 'failure.png', dir) } catch {}
    }
    await browser.close().catch(() => {})
    await rp.close()
  }
}

/** The consent page's facts, with its expectations checked. */
async function consentFacts (p, response, authorizeUrl, clientName) {
  const h = response.headers()
  const csp = h['content-security-policy'] ?? ''
  const facts = {
    url: pathOf(response.url()),
    status: response.status(),
    x_frame_options: h['x-frame-options'] ?? null,
    csp_frame_ancestors_none: csp.split(';').map((d) => d.trim().replace(/\s+/g, ' ').toLowerCase())
      .includes("frame-ancestors 'none'"),
    headings: (await p.getByRole('heading').allInnerTexts()).map((t) => t.trim()),
    scopes: (await p.getByRole('listitem').allInnerTexts()).map((t) => t.trim()),
    allow_button: await p.getByRole('button', { name: 'Allow', exact: true }).isVisible(),
    deny_button: await p.getByRole('button', { name: 'Deny', exact: true }).isVisible()
  }
  facts.names_client = facts.headings.some((t) => t.includes(clientName))
  expect(facts.url === authorizeUrl && facts.status === 200,
    `consent: expected the consent page at ${authorizeUrl} (200); got ${facts.url} (${facts.status})`)
  expect(/^deny$/i.test(facts.x_frame_options ?? ''), `consent: X-Frame-Options is ${JSON.stringify(facts.x_frame_options)}, expected DENY`)
  expect(facts.csp_frame_ancestors_none, `consent: Content-Security-Policy lacks frame-ancestors 'none': ${JSON.stringify(csp)}`)
  expect(facts.names_client, `consent: no heading names ${JSON.stringify(clientName)}: ${JSON.stringify(facts.headings)}`)
  expect(facts.scopes.length > 0, 'consent: no list of scopes')
  expect(facts.allow_button && facts.deny_button, 'consent: no Allow and Deny buttons')
  return facts
}

const watchdog = setTimeout(() => {
  console.error(`browser_flow.mjs: ${currentStep}: still running after ${WATCHDOG / 1000}s`)
  process.stdout.write(redact(JSON.stringify({ ...report, ok: false, failed_step: currentStep, error: 'timeout', screenshots })) + '\n')
  process.exit(1)
}, WATCHDOG)

try {
  await run()
  process.stdout.write(redact(JSON.stringify({ ...report, screenshots })) + '\n')
  process.exitCode = 0
} catch (err) {
  const message = redact(describe(err))
  process.stdout.write(redact(JSON.stringify({ ...report, ok: false, failed_step: currentStep, error: message, screenshots })) + '\n')
  console.error(`browser_flow.mjs: ${currentStep}: ${message}`)
  process.exitCode = 1
} finally {
  clearTimeout(watchdog)
}
