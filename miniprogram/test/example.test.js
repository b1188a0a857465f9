'use strict'
// Runs the example mini program (example/) against the fake wx: App and Page
// are given the way the mini program runtime gives them, and the page's
// `require('wxsub-miniprogram')` gets this package's main file, as WeChat
// DevTools' "Build npm" would.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { createRequire } = require('node:module')
const { createFakeWx } = require('./fake-wx')
const { createFakeServer } = require('./fake-server')

const exampleDir = path.join(__dirname, '..', 'example')
const pkg = require('../package.json')

function loadExample(fake) {
  const wxsub = require(path.join(__dirname, '..', pkg.main))
  let app = null
  let pageOptions = null
  function run(file) {
    const full = path.join(exampleDir, file)
    const nodeRequire = createRequire(full)
    const miniRequire = (spec) => (spec === 'wxsub-miniprogram' ? wxsub : nodeRequire(spec))
    const module = { exports: {} }
    const fn = new Function('require', 'module', 'exports', 'App', 'Page', 'getApp', 'wx', fs.readFileSync(full, 'utf8'))
    fn(miniRequire, module, module.exports, (o) => (app = o), (o) => (pageOptions = o), () => app, fake.wx)
  }
  global.wx = fake.wx // the module itself uses the global wx
  run('app.js')
  app.onLaunch()
  const appJson = JSON.parse(fs.readFileSync(path.join(exampleDir, 'app.json'), 'utf8'))
  run(appJson.pages[0] + '.js')
  const page = Object.assign({}, pageOptions, {
    data: Object.assign({}, pageOptions.data),
    setData(patch) {
      Object.assign(this.data, patch)
    },
  })
  return page
}

async function until(predicate) {
  for (let i = 0; i < 200 && !predicate(); i++) await new Promise((r) => setTimeout(r, 5))
  assert.ok(predicate(), 'condition not reached')
}

const config = require('../example/config')

function setup() {
  const server = createFakeServer(config.baseUrl)
  const templates = {}
  config.templateIds.forEach((id, i) => (templates[id] = { title: 'template ' + i }))
  const fake = createFakeWx({ templates, server: server.handle })
  return { server, fake }
}

test('example: logs in on load, subscribes on tap, shows the grants', async (t) => {
  t.after(() => delete global.wx)
  const { server, fake } = setup()
  const page = loadExample(fake)
  page.onLoad()
  await until(() => page.data.openid === 'openid-of-user' && page.data.grants !== '')
  fake.tap(() => page.onSubscribeTap())
  await until(() => page.data.status !== '')
  assert.equal(page.data.status, '订阅成功')
  await until(() => JSON.parse(page.data.grants).grants.length === config.templateIds.length)
  assert.equal(server.logins.length, 1)
})

test('example: a failure shows the named error\'s message', async (t) => {
  t.after(() => delete global.wx)
  const { fake } = setup()
  fake.state.mainSwitch = false
  fake.user.confirmModal = false
  const page = loadExample(fake)
  fake.tap(() => page.onSubscribeTap())
  await until(() => page.data.status !== '')
  assert.equal(page.data.status, '你已关闭订阅消息，可在设置中重新打开')
})
