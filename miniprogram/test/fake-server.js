'use strict'
/**
 * An in-process stand-in for the wxsub API, following DESIGN.md's contract:
 * `POST /login {code}` → `{token, openid, expires_in}`; session routes need
 * `Authorization: Bearer <token>` and answer 401 `invalid_session` otherwise;
 * `POST /subscriptions` takes the requestSubscribeMessage result and returns
 * the caller's grants; `GET /subscriptions` returns them; `GET
 * /subscriptions/templates` the template aliases; errors are
 * `{"error", "message"}`.
 */

/** @param {string} [base] the API base URL it answers under */
function createFakeServer(base = 'https://api.test') {
  const BASE = base
  let tokens = 0
  const sessions = new Map() // token -> openid
  const usedCodes = new Set()
  const grants = new Map() // openid -> {tmplId: count}
  const reports = []
  const aliases = { order_shipped: 'ORDER', refund: 'REFUND' } // GET /subscriptions/templates
  const logins = []
  /** queued answers that replace the next matching request's */
  const faults = []

  const json = (statusCode, value) => ({ statusCode, body: JSON.stringify(value) })
  const error = (statusCode, code, message) => json(statusCode, { error: code, message })

  function grantsOf(openid) {
    const g = grants.get(openid) || {}
    return { openid, grants: Object.keys(g).sort().map((id) => ({ template_id: id, one_time: g[id], long_term: false })) }
  }

  function handle({ method, url, header, body }) {
    if (!url.startsWith(BASE)) return json(404, { message: 'Not Found' })
    const path = url.slice(BASE.length)
    const i = faults.findIndex((f) => f.method === method && f.path === path)
    if (i >= 0) {
      const [f] = faults.splice(i, 1)
      return f.answer
    }
    let data
    if (body !== undefined) {
      try {
        data = JSON.parse(body)
      } catch (e) {
        return error(400, 'invalid_request', 'body is not JSON')
      }
    }
    if (method === 'POST' && path === '/login') {
      if (!data || typeof data.code !== 'string') return error(400, 'invalid_request', 'code is required')
      if (usedCodes.has(data.code)) return error(400, 'code_used', 'this code was already used')
      usedCodes.add(data.code)
      logins.push(data.code)
      const token = 'tok-' + ++tokens
      const openid = 'openid-of-user'
      sessions.set(token, openid)
      return json(200, { token, openid, expires_in: 7200 })
    }
    if (path !== '/subscriptions' && path !== '/subscriptions/templates') return json(404, { message: 'Not Found' })
    const auth = header.Authorization || ''
    const openid = auth.startsWith('Bearer ') ? sessions.get(auth.slice(7)) : undefined
    if (!openid) return error(401, 'invalid_session', 'session token missing, bad or expired')
    if (path === '/subscriptions/templates') {
      return method === 'GET' ? json(200, { templates: aliases }) : json(404, { message: 'Not Found' })
    }
    if (method === 'GET') return json(200, grantsOf(openid))
    if (method === 'POST') {
      if (!data || typeof data !== 'object') return error(400, 'invalid_request', 'body must be an object')
      reports.push(data)
      const g = grants.get(openid) || {}
      for (const [id, status] of Object.entries(data)) {
        if (id !== 'errMsg' && typeof status === 'string' && status.startsWith('accept')) g[id] = (g[id] || 0) + 1
      }
      grants.set(openid, g)
      return json(200, grantsOf(openid))
    }
    return json(404, { message: 'Not Found' })
  }

  return {
    base: BASE,
    handle,
    reports,
    logins,
    /** Makes every issued session token invalid, as an expiry would. */
    expireSessions() {
      sessions.clear()
    },
    /** The next `method path` request gets this answer instead, after `delayMs`. */
    failNext(method, path, statusCode, value, delayMs = 0) {
      const answer = typeof value === 'string' ? { statusCode, body: value } : json(statusCode, value)
      faults.push({ method, path, answer: Object.assign(answer, { delayMs }) })
    },
  }
}

module.exports = { createFakeServer }
