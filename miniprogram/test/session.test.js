'use strict'
const { test } = require('node:test')
const assert = require('node:assert/strict')
const wxsub = require('../wxsub')
const { createFakeWx } = require('./fake-wx')
const { createFakeServer } = require('./fake-server')

function setup() {
  const server = createFakeServer()
  const fake = createFakeWx({ server: server.handle })
  const client = wxsub.createClient({ baseUrl: server.base + '/', wx: fake.wx })
  return { server, fake, client }
}

test('login: wx.login code → POST /login → session kept in storage', async () => {
  const { server, fake, client } = setup()
  const before = Date.now()
  const session = await client.login()
  assert.equal(session.token, 'tok-1')
  assert.equal(session.openid, 'openid-of-user')
  assert.ok(session.expiresAt >= before + 7200 * 1000)
  assert.deepEqual(server.logins, ['code-1'])
  assert.deepEqual(fake.wx.getStorageSync('wxsub.session'), session)
  const loginCall = fake.calls.request[0]
  assert.equal(loginCall.url, 'https://api.test/login', 'trailing slash of baseUrl is dropped')
  assert.equal(loginCall.header.Authorization, undefined)
})

test('login is single-flight: concurrent calls share one wx.login', async () => {
  const { server, fake, client } = setup()
  const [a, b] = await Promise.all([client.login(), client.login()])
  assert.equal(a, b)
  assert.equal(fake.calls.login, 1)
  assert.equal(server.logins.length, 1)
})

test('a stored session is reused by a new client (next app launch) without logging in', async () => {
  const { server, fake, client } = setup()
  await client.login()
  const relaunched = wxsub.createClient({ baseUrl: server.base, wx: fake.wx })
  await relaunched.grants()
  assert.equal(fake.calls.login, 1)
})

test('a session about to expire is renewed before use', async () => {
  const { server, fake, client } = setup()
  const session = await client.login()
  fake.wx.setStorageSync('wxsub.session', Object.assign({}, session, { expiresAt: Date.now() + 1000 }))
  const relaunched = wxsub.createClient({ baseUrl: server.base, wx: fake.wx })
  await relaunched.grants()
  assert.equal(server.logins.length, 2)
})

test('a session without a lifetime is used until the server refuses it', async () => {
  const { server, fake, client } = setup()
  server.failNext('POST', '/login', 200, { token: 'tok-x', openid: 'openid-of-user' })
  const session = await client.login()
  assert.equal(session.expiresAt, 0)
  await client.grants()
  // tok-x was sent (not renewed up front); the server refused it, so one login followed
  assert.equal(fake.calls.request[1].header.Authorization, 'Bearer tok-x')
  assert.equal(fake.calls.login, 2)
})

test('login retries once with a fresh wx.login code when WeChat gave the server no usable answer', async () => {
  const { server, fake, client } = setup()
  server.failNext('POST', '/login', 503, { error: 'wechat_unavailable', message: 'WeChat gave no usable answer' })
  const session = await client.login()
  assert.equal(session.openid, 'openid-of-user')
  assert.equal(fake.calls.login, 2, 'the first code may be spent, so a second wx.login is asked for')
  assert.deepEqual(server.logins, ['code-2'])
})

test('a second 503 on login is the caller\'s to see, after exactly two codes', async () => {
  const { server, fake, client } = setup()
  const busy = { error: 'wechat_unavailable', message: 'WeChat gave no usable answer' }
  server.failNext('POST', '/login', 503, busy)
  server.failNext('POST', '/login', 503, busy)
  await assert.rejects(client.login(), { code: 'wechat_unavailable', status: 503 })
  assert.equal(fake.calls.login, 2)
  assert.deepEqual(server.logins, [])
})

test('login errors: the server code, or login_failed when wx.login fails', async () => {
  const { server, fake, client } = setup()
  server.failNext('POST', '/login', 400, { error: 'invalid_code', message: 'the login code is not valid' })
  await assert.rejects(client.login(), { code: 'invalid_code', status: 400, message: 'the login code is not valid' })
  fake.state.loginFails = true
  await assert.rejects(client.login(), (err) => {
    assert.equal(err.code, 'login_failed')
    assert.equal(err.errMsg, 'login:fail network error')
    return true
  })
  fake.state.loginFails = false
  assert.equal((await client.login()).token, 'tok-1', 'a failed login does not block the next one')
})

test('request sends the bearer token, JSON body and extra headers', async () => {
  const { server, fake, client } = setup()
  await client.login()
  const body = await client.request({
    method: 'POST',
    path: '/subscriptions',
    data: { errMsg: 'requestSubscribeMessage:ok', X: 'accept' },
    header: { 'X-Trace': '1' },
  })
  assert.deepEqual(body, { openid: 'openid-of-user', grants: [{ template_id: 'X', one_time: 1, long_term: false }] })
  const call = fake.calls.request[1]
  assert.equal(call.header.Authorization, 'Bearer tok-1')
  assert.equal(call.header['content-type'], 'application/json')
  assert.equal(call.header['X-Trace'], '1')
  assert.deepEqual(server.reports, [{ errMsg: 'requestSubscribeMessage:ok', X: 'accept' }])
})

test('401: logs in again once and retries once', async () => {
  const { server, client, fake } = setup()
  await client.login()
  server.expireSessions()
  const grants = await client.grants()
  assert.deepEqual(grants, { openid: 'openid-of-user', grants: [] })
  assert.equal(server.logins.length, 2)
  assert.equal(fake.wx.getStorageSync('wxsub.session').token, 'tok-2')
})

test('401 for concurrent requests triggers a single login', async () => {
  const { server, client } = setup()
  await client.login()
  server.expireSessions()
  const answers = await Promise.all([client.grants(), client.grants(), client.grants()])
  assert.equal(answers.length, 3)
  assert.equal(server.logins.length, 2, 'one initial login and one renewal')
})

test('a 401 that arrives after another request renewed the session reuses the new session', async () => {
  const { server, client } = setup()
  await client.login()
  server.expireSessions()
  const refused = { error: 'invalid_session', message: 'session token missing, bad or expired' }
  server.failNext('GET', '/subscriptions', 401, refused, 50)
  const slow = client.grants()
  await client.grants()
  assert.equal(server.logins.length, 2)
  await slow
  assert.equal(server.logins.length, 2, 'the slow request retried with the renewed session')
})

test('401 again after the retry is the rejection (no loop)', async () => {
  const { server, client } = setup()
  await client.login()
  server.expireSessions()
  const refused = { error: 'invalid_session', message: 'session token missing, bad or expired' }
  server.failNext('GET', '/subscriptions', 401, refused)
  server.failNext('GET', '/subscriptions', 401, refused)
  await assert.rejects(client.grants(), { code: 'invalid_session', status: 401 })
  assert.equal(server.logins.length, 2)
})

test('server error: the JSON error body becomes a rejection with its code and message', async () => {
  const { server, client } = setup()
  server.failNext('GET', '/subscriptions', 503, { error: 'wechat_unavailable', message: 'WeChat is not answering' })
  await assert.rejects(client.grants(), (err) => {
    assert.ok(err instanceof wxsub.WxsubError)
    assert.equal(err.code, 'wechat_unavailable')
    assert.equal(err.status, 503)
    assert.equal(err.message, 'WeChat is not answering')
    assert.deepEqual(err.body, { error: 'wechat_unavailable', message: 'WeChat is not answering' })
    return true
  })
})

test('an error answer not in our shape (gateway 404, text) is http_error with the status', async () => {
  const { server, client } = setup()
  await assert.rejects(client.request({ path: '/nowhere' }), { code: 'http_error', status: 404 })
  server.failNext('GET', '/subscriptions', 502, 'Bad Gateway')
  await assert.rejects(client.grants(), { code: 'http_error', status: 502, message: wxsub.MESSAGES.http_error })
})

test('network failure is network_error with the errMsg', async () => {
  const { fake, client } = setup()
  fake.state.network = false
  await assert.rejects(client.login(), { code: 'network_error', errMsg: 'request:fail timeout' })
})

test('logout forgets the session', async () => {
  const { fake, client } = setup()
  await client.login()
  client.logout()
  assert.equal(fake.wx.getStorageSync('wxsub.session'), '')
  assert.equal(client.session(), null)
})

test('request: url is taken as path, as wx.request names it', async () => {
  const { fake, client } = setup()
  await client.request({ url: '/subscriptions' })
  await client.request({ url: 'https://api.test/subscriptions', timeout: 5000 })
  const calls = fake.calls.request.filter((call) => call.url.endsWith('/subscriptions'))
  assert.deepEqual(calls.map((call) => call.url), ['https://api.test/subscriptions', 'https://api.test/subscriptions'])
  assert.equal(calls[1].timeout, 5000)
})

test('request: an option it would drop, or a missing path, is a TypeError naming it', async () => {
  const { fake, client } = setup()
  await assert.rejects(client.request({ path: '/subscriptions', success: () => {} }), (err) => {
    assert.ok(err instanceof TypeError)
    assert.match(err.message, /"success"/)
    return true
  })
  await assert.rejects(client.request({ path: '/subscriptions', methd: 'POST' }), /no option "methd"/)
  await assert.rejects(client.request({ method: 'GET' }), /needs path \(or url\)/)
  await assert.rejects(client.request({ path: '/a', url: '/b' }), /both path and url/)
  await assert.rejects(client.request({ url: 'https://elsewhere.test/x' }), /not under this client's baseUrl/)
  assert.equal(fake.calls.request.length, 0, 'nothing was sent')
})
