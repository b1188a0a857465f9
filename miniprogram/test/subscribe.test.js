'use strict'
const { test } = require('node:test')
const assert = require('node:assert/strict')
const wxsub = require('../wxsub')
const { createFakeWx } = require('./fake-wx')
const { createFakeServer } = require('./fake-server')

const TEMPLATES = {
  ORDER: { title: '订单发货提醒' },
  REFUND: { title: '退款通知' },
  ARRIVAL: { title: '到货提醒' },
  ORDER_COPY: { title: '订单发货提醒' },
  SPAM: { title: '活动通知', banned: true },
  T4: { title: '四' },
  T5: { title: '五' },
  T6: { title: '六' },
  LONG: { title: '长期提醒', type: 'long-term' },
}

function setup(options = {}) {
  const server = createFakeServer()
  const fake = createFakeWx({ templates: TEMPLATES, server: server.handle, sdkVersion: options.sdkVersion })
  const client = wxsub.createClient({ baseUrl: server.base, wx: fake.wx })
  return { server, fake, client }
}

const empty = { accepted: [], rejected: [], banned: [], filtered: [] }
const outcome = (o) => Object.assign({}, empty, o)

test('accept: resolves with the accepted id and reports the raw result', async () => {
  const { server, fake, client } = setup()
  const result = await fake.tap(() => client.subscribe(['ORDER']))
  assert.deepEqual(result, outcome({ accepted: ['ORDER'] }))
  assert.deepEqual(server.reports, [{ errMsg: 'requestSubscribeMessage:ok', ORDER: 'accept' }])
  assert.deepEqual(await client.grants(), { openid: 'openid-of-user', grants: [{ template_id: 'ORDER', one_time: 1, long_term: false }] })
  assert.equal(fake.calls.showModal.length, 0)
})

test('reject: the declined id is listed as rejected, no settings guidance', async () => {
  const { server, fake, client } = setup()
  fake.user.answers.REFUND = 'reject'
  const result = await fake.tap(() => client.subscribe(['ORDER', 'REFUND']))
  assert.deepEqual(result, outcome({ accepted: ['ORDER'], rejected: ['REFUND'] }))
  assert.equal(server.reports[0].REFUND, 'reject')
  assert.equal(fake.calls.showModal.length, 0)
})

test('ban: a banned template is listed as banned', async () => {
  const { fake, client } = setup()
  const result = await fake.tap(() => client.subscribe(['SPAM', 'ORDER']))
  assert.deepEqual(result, outcome({ accepted: ['ORDER'], banned: ['SPAM'] }))
})

test('filter: a second template with the same title is listed as filtered', async () => {
  const { fake, client } = setup()
  const result = await fake.tap(() => client.subscribe(['ORDER', 'ORDER_COPY']))
  assert.deepEqual(result, outcome({ accepted: ['ORDER'], filtered: ['ORDER_COPY'] }))
})

test('acceptWithAudio counts as accepted', async () => {
  const { server, fake, client } = setup()
  fake.user.answers.ARRIVAL = 'acceptWithAudio'
  const result = await fake.tap(() => client.subscribe(['ARRIVAL']))
  assert.deepEqual(result, outcome({ accepted: ['ARRIVAL'] }))
  assert.equal(server.reports[0].ARRIVAL, 'acceptWithAudio')
})

test('every accept* status counts as accepted; unknown statuses do not', () => {
  const result = {
    errMsg: 'requestSubscribeMessage:ok',
    a: 'accept',
    b: 'acceptWithAudio',
    c: 'acceptWithAlert',
    d: 'acceptWithForcePush',
    e: 'reject',
    f: 'ban',
    g: 'filter',
    h: 'somethingNew',
  }
  assert.deepEqual(wxsub.classify(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'], result), {
    accepted: ['a', 'b', 'c', 'd'],
    rejected: ['e', 'h'],
    banned: ['f'],
    filtered: ['g'],
  })
})

test('main switch off: named error, a modal that leads to the settings page, no popup', async () => {
  const { server, fake, client } = setup()
  fake.state.mainSwitch = false
  fake.user.inSettings = () => {
    fake.state.mainSwitch = true
  }
  await assert.rejects(fake.tap(() => client.subscribe(['ORDER'])), (err) => {
    assert.equal(err.name, 'WxsubError')
    assert.equal(err.code, 'main_switch_off')
    assert.equal(err.message, wxsub.MESSAGES.main_switch_off)
    return true
  })
  assert.equal(fake.calls.requestSubscribeMessage.length, 0)
  assert.equal(fake.calls.showModal.length, 1)
  assert.equal(fake.calls.showModal[0].content, wxsub.MESSAGES.guide_main_switch_off)
  assert.equal(fake.calls.openSetting, 1)
  assert.equal(server.reports.length, 0)
  // the user switched it back on in settings: the next tap works
  assert.deepEqual(await fake.tap(() => client.subscribe(['ORDER'])), outcome({ accepted: ['ORDER'] }))
})

test('main switch off when getSetting cannot tell: 20004 from the popup call is the same named error', async () => {
  const { fake, client } = setup()
  fake.state.mainSwitch = false
  fake.state.getSettingFails = true
  fake.user.confirmModal = false
  await assert.rejects(fake.tap(() => client.subscribe(['ORDER'])), (err) => {
    assert.equal(err.code, 'main_switch_off')
    assert.equal(err.errCode, 20004)
    assert.match(err.errMsg, /main switch is switched off/i)
    return true
  })
  assert.equal(fake.calls.showModal.length, 1)
  assert.equal(fake.calls.openSetting, 0, 'the user cancelled the modal')
})

test('remembered reject: no popup for it, listed as rejected, reported, and the user is guided to settings', async () => {
  const { server, fake, client } = setup()
  fake.state.remembered.REFUND = 'reject'
  const result = await fake.tap(() => client.subscribe(['ORDER', 'REFUND']))
  assert.deepEqual(result, outcome({ accepted: ['ORDER'], rejected: ['REFUND'] }))
  assert.deepEqual(fake.calls.popup, [['ORDER']])
  assert.deepEqual(server.reports, [{ errMsg: 'requestSubscribeMessage:ok', ORDER: 'accept', REFUND: 'reject' }])
  assert.equal(fake.calls.showModal.length, 1)
  assert.equal(fake.calls.showModal[0].content, wxsub.MESSAGES.guide_remembered_reject)
  assert.equal(fake.calls.openSetting, 1)
})

test('a reject the user just ticked "always keep" for is guided on the next call, not this one', async () => {
  const { fake, client } = setup()
  fake.user.answers.ORDER = 'reject'
  fake.user.alwaysKeep = true
  await fake.tap(() => client.subscribe(['ORDER']))
  assert.equal(fake.calls.showModal.length, 0)
  const again = await fake.tap(() => client.subscribe(['ORDER']))
  assert.deepEqual(again, outcome({ rejected: ['ORDER'] }))
  assert.deepEqual(fake.calls.popup, [['ORDER'], []])
  assert.equal(fake.calls.showModal.length, 1)
})

test('too many ids: refused with a named error before wx is called (3 before base library 3.12.1)', async () => {
  const { fake, client } = setup({ sdkVersion: '3.12.0' })
  await assert.rejects(fake.tap(() => client.subscribe(['ORDER', 'REFUND', 'ARRIVAL', 'T4'])), (err) => {
    assert.equal(err.code, 'too_many_templates')
    assert.equal(err.limit, 3)
    assert.equal(err.message, wxsub.MESSAGES.too_many_templates)
    return true
  })
  assert.equal(fake.calls.requestSubscribeMessage.length, 0)
  assert.equal(fake.calls.getSetting, 0)
})

test('too many ids: 5 are allowed from base library 3.12.1, 6 are not', async () => {
  const { fake, client } = setup({ sdkVersion: '3.12.1' })
  const five = ['ORDER', 'REFUND', 'ARRIVAL', 'T4', 'T5']
  assert.deepEqual(await fake.tap(() => client.subscribe(five)), outcome({ accepted: five }))
  await assert.rejects(fake.tap(() => client.subscribe(five.concat('T6'))), { code: 'too_many_templates', limit: 5 })
  assert.equal(fake.calls.requestSubscribeMessage.length, 1)
})

test('old base library without getAppBaseInfo: the version comes from getSystemInfoSync', async () => {
  const { fake, client } = setup({ sdkVersion: '2.19.0' })
  assert.equal(typeof fake.wx.getAppBaseInfo, 'undefined')
  assert.equal(client.maxTemplateIds(), 3)
})

test('no ids: refused', async () => {
  const { fake, client } = setup()
  await assert.rejects(client.subscribe([]), { code: 'no_templates' })
  await assert.rejects(client.subscribe(['']), { code: 'no_templates' })
  assert.equal(fake.calls.requestSubscribeMessage.length, 0)
})

test('calls cannot overlap: a second subscribe while the popup is open is refused', async () => {
  const { fake, client } = setup()
  fake.user.thinkMs = 30
  const first = fake.tap(() => client.subscribe(['ORDER']))
  const second = fake.tap(() => client.subscribe(['REFUND']))
  await assert.rejects(second, { code: 'subscribe_pending', message: wxsub.MESSAGES.subscribe_pending })
  assert.deepEqual(await first, outcome({ accepted: ['ORDER'] }))
  assert.equal(fake.calls.requestSubscribeMessage.length, 1)
  // once the first has ended, the next tap works
  assert.deepEqual(await fake.tap(() => client.subscribe(['REFUND'])), outcome({ accepted: ['REFUND'] }))
})

test('"last call has not ended" from wx (a call made elsewhere) is the same named error', async () => {
  const { fake, client } = setup()
  fake.user.thinkMs = 30
  fake.tap(() => fake.wx.requestSubscribeMessage({ tmplIds: ['ARRIVAL'] }))
  await assert.rejects(fake.tap(() => client.subscribe(['ORDER'])), (err) => {
    assert.equal(err.code, 'subscribe_pending')
    assert.equal(err.errMsg, 'requestSubscribeMessage:fail last call has not ended')
    return true
  })
})

test('not from a tap: named error carrying the TAP-gesture errMsg', async () => {
  const { server, fake, client } = setup()
  await assert.rejects(client.subscribe(['ORDER']), (err) => {
    assert.equal(err.code, 'tap_required')
    assert.equal(err.message, wxsub.MESSAGES.tap_required)
    assert.match(err.errMsg, /TAP gesture/)
    return true
  })
  assert.equal(server.reports.length, 0)
})

test('UI not shown (10005, app in background): named error', async () => {
  const { fake, client } = setup()
  fake.state.foreground = false
  await assert.rejects(fake.tap(() => client.subscribe(['ORDER'])), { code: 'ui_not_shown', errCode: 10005 })
})

test('other documented fail codes map to named errors', async () => {
  const { fake, client } = setup()
  await assert.rejects(fake.tap(() => client.subscribe(['NOPE'])), { code: 'invalid_template', errCode: 20001 })
  await assert.rejects(fake.tap(() => client.subscribe(['ORDER', 'LONG'])), {
    code: 'mixed_template_types',
    errCode: 20002,
  })
  fake.state.appBanned = true
  await assert.rejects(fake.tap(() => client.subscribe(['ORDER'])), { code: 'app_banned', errCode: 20005 })
})

test('subscribe logs in first when there is no session, after the popup', async () => {
  const { server, fake, client } = setup()
  await fake.tap(() => client.subscribe(['ORDER']))
  assert.equal(server.logins.length, 1)
  const order = fake.calls.request.map((r) => r.method + ' ' + r.url.slice(server.base.length))
  assert.deepEqual(order, ['POST /login', 'POST /subscriptions'])
})

test('a failed report rejects with the server error and still carries the user\'s choices', async () => {
  const { server, fake, client } = setup()
  await client.login()
  server.failNext('POST', '/subscriptions', 503, { error: 'wechat_unavailable', message: 'WeChat is not answering' })
  await assert.rejects(fake.tap(() => client.subscribe(['ORDER'])), (err) => {
    assert.equal(err.code, 'wechat_unavailable')
    assert.equal(err.status, 503)
    assert.equal(err.message, 'WeChat is not answering')
    assert.deepEqual(err.result, outcome({ accepted: ['ORDER'] }))
    return true
  })
})

test('messages can be replaced', async () => {
  const server = createFakeServer()
  const fake = createFakeWx({ templates: TEMPLATES, server: server.handle })
  const client = wxsub.createClient({ baseUrl: server.base, wx: fake.wx, messages: { tap_required: 'Tap the button' } })
  await assert.rejects(client.subscribe(['ORDER']), { code: 'tap_required', message: 'Tap the button' })
})

test('guide: false shows no modal', async () => {
  const server = createFakeServer()
  const fake = createFakeWx({ templates: TEMPLATES, server: server.handle })
  const client = wxsub.createClient({ baseUrl: server.base, wx: fake.wx, guide: false })
  fake.state.mainSwitch = false
  await assert.rejects(fake.tap(() => client.subscribe(['ORDER'])), { code: 'main_switch_off' })
  assert.equal(fake.calls.showModal.length, 0)
})

test('aliases: after loadTemplates(), subscribe takes names and answers by them; WeChat gets the ids', async () => {
  const { server, fake, client } = setup()
  assert.deepEqual(await client.loadTemplates(), { order_shipped: 'ORDER', refund: 'REFUND' })
  fake.user.answers.REFUND = 'reject'
  const result = await fake.tap(() => client.subscribe(['order_shipped', 'refund', 'ARRIVAL']))
  assert.deepEqual(result, outcome({ accepted: ['order_shipped', 'ARRIVAL'], rejected: ['refund'] }))
  assert.deepEqual(fake.calls.requestSubscribeMessage, [['ORDER', 'REFUND', 'ARRIVAL']])
  assert.deepEqual(server.reports, [{ errMsg: 'requestSubscribeMessage:ok', ORDER: 'accept', REFUND: 'reject', ARRIVAL: 'accept' }])
})

test('aliases before loadTemplates(): a named error and no popup, since the popup must come straight from the tap', async () => {
  const { fake, client } = setup()
  await assert.rejects(fake.tap(() => client.subscribe(['order_shipped'])), (err) => err.code === 'templates_not_loaded')
  assert.equal(fake.calls.requestSubscribeMessage.length, 0)
})
