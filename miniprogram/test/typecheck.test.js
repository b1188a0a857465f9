'use strict'
// The type check uses the official miniprogram-api-typings: a misspelled wx
// call must fail it. Runs tsc on a fixture of typos and reads its errors.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const path = require('node:path')

const root = path.join(__dirname, '..')
const tsc = require.resolve('typescript/bin/tsc', { paths: [root] })

test('misspelled wx calls fail the type check, naming the misspelling', () => {
  const run = spawnSync(process.execPath, [tsc, '--noEmit', '--pretty', 'false', '-p', 'test/fixtures/typos'], {
    cwd: root,
    encoding: 'utf8',
  })
  assert.notEqual(run.status, 0, 'tsc must exit non-zero')
  const errors = run.stdout.split('\n').filter((line) => line.includes('error TS'))
  const at = (line) => errors.find((e) => e.includes(`typos.js(${line},`))
  assert.match(at(5), /TS2551: Property 'requestSubscribeMesage' does not exist on type 'Wx'\. Did you mean 'requestSubscribeMessage'\?/)
  assert.match(at(9), /TS2561: .*'withSubscription' does not exist in type 'GetSettingOption'\. Did you mean to write 'withSubscriptions'\?/)
  assert.match(at(13), /TS2561: .*'tmplId' does not exist in type 'RequestSubscribeMessageOption'/)
  assert.equal(at(18), undefined, 'the documented gap: an inline extra key on a generic option')
  assert.equal(errors.length, 3, errors.join('\n'))
})
