'use strict'
// The module-level functions, using the global `wx` as a mini program does.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const wxsub = require('../wxsub')
const { createFakeWx } = require('./fake-wx')
const { createFakeServer } = require('./fake-server')

test('before init, calls reject with not_initialized', async () => {
  await assert.rejects(wxsub.login(), { code: 'not_initialized' })
  await assert.rejects(wxsub.subscribe(['A']), { code: 'not_initialized' })
})

test('init needs a base URL', () => {
  assert.throws(() => wxsub.init(/** @type {any} */ ({})), TypeError)
})

test('init → login → subscribe from a tap → grants, through the global wx', async () => {
  const server = createFakeServer()
  const fake = createFakeWx({ templates: { A: { title: 'a' } }, server: server.handle })
  global.wx = fake.wx
  try {
    wxsub.init({ baseUrl: server.base })
    const session = await wxsub.login()
    assert.equal(session.openid, 'openid-of-user')
    assert.deepEqual(await fake.tap(() => wxsub.subscribe(['A'])), {
      accepted: ['A'],
      rejected: [],
      banned: [],
      filtered: [],
    })
    assert.deepEqual(await wxsub.grants(), { openid: 'openid-of-user', grants: [{ template_id: 'A', one_time: 1, long_term: false }] })
    assert.deepEqual(await wxsub.request({ path: '/subscriptions' }), await wxsub.grants())
  } finally {
    delete global.wx
  }
})

test('subscribe reaches wx within the tap handler\'s own turn (no deferral before getSetting)', async () => {
  const server = createFakeServer()
  const fake = createFakeWx({ templates: { A: { title: 'a' } }, server: server.handle })
  global.wx = fake.wx
  try {
    wxsub.init({ baseUrl: server.base })
    const pending = fake.tap(() => wxsub.subscribe(['A']))
    assert.equal(fake.calls.getSetting, 1)
    await pending
  } finally {
    delete global.wx
  }
})

test('compareVersion', () => {
  assert.ok(wxsub.compareVersion('3.12.1', '3.12.1') === 0)
  assert.ok(wxsub.compareVersion('3.12.0', '3.12.1') < 0)
  assert.ok(wxsub.compareVersion('3.13', '3.12.1') > 0)
  assert.ok(wxsub.compareVersion('2.30.4', '3.0.0') < 0)
  assert.ok(wxsub.compareVersion('10.0.0', '9.9.9') > 0)
})
