'use strict'
/**
 * A fake `wx` that behaves as wechat-api.md §6 and the official typings say:
 *
 * - callbacks are called asynchronously, success with `errMsg: "<api>:ok"`;
 * - `requestSubscribeMessage` succeeds with one key per requested template
 *   id, fails with `{errCode, errMsg}` for the documented codes, refuses a
 *   call while the previous one is open ("last call has not ended") and a
 *   call not started from a tap ("can only be invoked by user TAP gesture.";
 *   both seen without an errCode), resolves remembered choices without a
 *   popup, answers `filter` for a second template with the same title and
 *   `ban` for a banned one, and allows 3 ids per call (5 from base library
 *   3.12.1);
 * - `getSetting({withSubscriptions: true})` returns `subscriptionsSetting`
 *   whose `itemSettings` lists only choices made with "always keep this
 *   choice" (and is absent when there are none);
 * - `request` talks to an in-process server through JSON text, parses the
 *   answer when `dataType` is `json`, and fails with `errMsg` when the
 *   network is down;
 * - storage returns `''` for a missing key.
 *
 * The user is scripted through `user`: answers per template, whether they
 * tick "always keep this choice", what they do in modals and on the
 * settings page.
 */

const FIVE_IDS_FROM = [3, 12, 1]

/** @param {string} v */
function atLeast(v, min) {
  const parts = v.split('.').map(Number)
  for (let i = 0; i < min.length; i++) {
    if ((parts[i] || 0) !== min[i]) return (parts[i] || 0) > min[i]
  }
  return true
}

/**
 * @param {object} [options]
 * @param {string} [options.sdkVersion] base library version
 * @param {Record<string, {title: string, type?: 'one-time' | 'long-term', banned?: boolean}>} [options.templates]
 * @param {(req: {method: string, url: string, header: Record<string, string>, body: string | undefined}) => {statusCode: number, body: string, delayMs?: number}} [options.server]
 */
function createFakeWx(options = {}) {
  const sdkVersion = options.sdkVersion || '3.12.1'
  const templates = options.templates || {}
  const storage = new Map()
  let codes = 0
  let gesture = false
  let pending = false

  const state = {
    mainSwitch: true,
    /** "always keep this choice" answers: what itemSettings lists */
    remembered: /** @type {Record<string, string>} */ ({}),
    foreground: true,
    appBanned: false,
    network: true,
    loginFails: false,
    getSettingFails: false,
  }
  const user = {
    /** per template id; default 'accept' */
    answers: /** @type {Record<string, string>} */ ({}),
    alwaysKeep: false,
    confirmModal: true,
    /** called when the settings page opens; may change `state` */
    inSettings: /** @type {null | (() => void)} */ (null),
    /** ms the user takes to answer the popup */
    thinkMs: 5,
  }
  const calls = {
    login: 0,
    getSetting: 0,
    /** tmplIds of each call */
    requestSubscribeMessage: /** @type {string[][]} */ ([]),
    /** ids the popup actually showed, per call */
    popup: /** @type {string[][]} */ ([]),
    showModal: /** @type {any[]} */ ([]),
    openSetting: 0,
    request: /** @type {{method: string, url: string, header: Record<string, string>, data: any, timeout?: number}[]} */ ([]),
  }

  const later = (fn, ms = 0) => setTimeout(fn, ms)
  function done(option, result, ms = 0) {
    later(() => {
      if (option.success) option.success(result)
      if (option.complete) option.complete(result)
    }, ms)
  }
  function failed(option, result, ms = 0) {
    later(() => {
      if (option.fail) option.fail(result)
      if (option.complete) option.complete(result)
    }, ms)
  }

  function subscriptionsSetting() {
    const setting = { mainSwitch: state.mainSwitch }
    if (Object.keys(state.remembered).length > 0) setting.itemSettings = Object.assign({}, state.remembered)
    return setting
  }

  const maxIds = atLeast(sdkVersion, FIVE_IDS_FROM) ? 5 : 3

  /** The status each id gets, and which ids the popup shows. */
  function answer(tmplIds) {
    const result = { errMsg: 'requestSubscribeMessage:ok' }
    const shown = []
    const titles = new Set()
    for (const id of tmplIds) {
      const t = templates[id]
      if (titles.has(t.title)) {
        result[id] = 'filter'
        continue
      }
      titles.add(t.title)
      if (t.banned) {
        result[id] = 'ban'
      } else if (state.remembered[id]) {
        result[id] = state.remembered[id]
      } else {
        shown.push(id)
        let a = user.answers[id] || 'accept'
        // voice reminders are offered only for a single-template request
        if (a === 'acceptWithAudio' && tmplIds.length > 1) a = 'accept'
        result[id] = a
        if (user.alwaysKeep) state.remembered[id] = a
      }
    }
    return { result, shown }
  }

  const wx = {
    login(option = {}) {
      calls.login++
      if (state.loginFails) return failed(option, { errMsg: 'login:fail network error' })
      codes++
      done(option, { code: 'code-' + codes, errMsg: 'login:ok' })
    },

    getSetting(option = {}) {
      calls.getSetting++
      if (state.getSettingFails) return failed(option, { errMsg: 'getSetting:fail' })
      const res = { authSetting: {}, errMsg: 'getSetting:ok' }
      if (option.withSubscriptions) res.subscriptionsSetting = subscriptionsSetting()
      done(option, res)
    },

    requestSubscribeMessage(option) {
      const ids = option.tmplIds
      calls.requestSubscribeMessage.push(ids.slice())
      const fail = (errCode, text) =>
        failed(option, errCode === undefined
          ? { errMsg: 'requestSubscribeMessage:fail ' + text }
          : { errCode, errMsg: 'requestSubscribeMessage:fail ' + text })
      if (pending) return fail(undefined, 'last call has not ended')
      const tapped = gesture
      gesture = false
      if (!tapped) return fail(undefined, 'can only be invoked by user TAP gesture.')
      if (!Array.isArray(ids) || ids.length === 0) return fail(10001, "TmplIds can't be empty")
      if (ids.some((id) => typeof id !== 'string')) return fail(10004, 'Invalid template id')
      if (ids.length > maxIds) return fail(20003, 'Templates count out of max bounds')
      if (ids.some((id) => !templates[id])) return fail(20001, 'No template data return, verify the template id exist')
      if (new Set(ids.map((id) => templates[id].type || 'one-time')).size > 1) {
        return fail(20002, 'Templates type must be same')
      }
      if (state.appBanned) return fail(20005, 'This mini program was banned from subscribing messages')
      if (!state.mainSwitch) return fail(20004, 'The main switch is switched off')
      if (!state.foreground) return fail(10005, 'Cannot show subscribe message UI')
      pending = true
      const { result, shown } = answer(ids)
      calls.popup.push(shown)
      later(() => {
        pending = false
        if (option.success) option.success(result)
        if (option.complete) option.complete(result)
      }, shown.length > 0 ? user.thinkMs : 0)
    },

    showModal(option) {
      calls.showModal.push({ title: option.title, content: option.content, confirmText: option.confirmText })
      const confirm = user.confirmModal
      done(option, { confirm, cancel: !confirm, content: '', errMsg: 'showModal:ok' })
    },

    openSetting(option = {}) {
      calls.openSetting++
      if (user.inSettings) user.inSettings()
      const res = { authSetting: {}, errMsg: 'openSetting:ok' }
      if (option.withSubscriptions) res.subscriptionsSetting = subscriptionsSetting()
      done(option, res)
    },

    request(option) {
      const header = Object.assign({}, option.header || {})
      calls.request.push({ method: option.method || 'GET', url: option.url, header, data: option.data, timeout: option.timeout })
      if (!state.network || !options.server) {
        return failed(option, { errMsg: 'request:fail timeout', errno: 5 })
      }
      const method = option.method || 'GET'
      let body
      if (option.data !== undefined && method !== 'GET') {
        body = typeof option.data === 'string' ? option.data : JSON.stringify(option.data)
      }
      const answerRes = options.server({ method, url: option.url, header, body })
      let data = answerRes.body
      if ((option.dataType || 'json') === 'json') {
        try {
          data = JSON.parse(answerRes.body)
        } catch (e) {
          // wx leaves a body that is not JSON as text
        }
      }
      const res = { data, statusCode: answerRes.statusCode, header: {}, cookies: [], errMsg: 'request:ok' }
      done(option, res, answerRes.delayMs || 0)
      return { abort() {} }
    },

    setStorageSync(key, value) {
      storage.set(key, JSON.stringify(value))
    },
    getStorageSync(key) {
      return storage.has(key) ? JSON.parse(storage.get(key)) : ''
    },
    removeStorageSync(key) {
      storage.delete(key)
    },
    getSystemInfoSync() {
      return { SDKVersion: sdkVersion }
    },
  }
  // getAppBaseInfo exists from base library 2.20.1
  if (atLeast(sdkVersion, [2, 20, 1])) wx.getAppBaseInfo = () => ({ SDKVersion: sdkVersion })

  /**
   * Runs `handler` as a tap handler: a popup may be opened from it.
   * @template T
   * @param {() => T} handler
   * @returns {T}
   */
  function tap(handler) {
    gesture = true
    return handler()
  }

  return { wx, state, user, calls, storage, tap }
}

module.exports = { createFakeWx }
