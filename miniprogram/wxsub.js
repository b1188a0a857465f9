// @ts-check
/**
 * wxsub client for WeChat Mini Programs.
 *
 * Asks the user for subscription-message permission, logs in against a wxsub
 * backend and reports what the user chose. Plain CommonJS with JSDoc types,
 * checked by `tsc --noEmit` against miniprogram-api-typings; no dependencies.
 *
 * Only callback-style wx APIs are used, so no base-library promise support
 * is needed. The syntax is ES2017 (async functions), which current WeChat
 * clients run natively and the developer tools compile when asked.
 */

/**
 * A per-template status in the object `wx.requestSubscribeMessage` resolves
 * with. Every `accept*` value means the user agreed.
 * @typedef {'accept' | 'acceptWithAudio' | 'acceptWithAlert' | 'acceptWithForcePush'
 *   | 'reject' | 'ban' | 'filter'} SubscribeStatus
 */

/**
 * What `wx.requestSubscribeMessage` resolves with: `errMsg` plus one key per
 * requested template id. The official typings say `[id: string]: string`.
 * @typedef {{errMsg: string, [tmplId: string]: SubscribeStatus | string}} SubscribeResult
 */

/**
 * A choice the user made with "always keep this choice" (总是保持以上选择，不再询问),
 * as `getSetting({withSubscriptions: true})` lists it in `itemSettings`.
 * @typedef {'accept' | 'acceptWithAudio' | 'acceptWithAlert' | 'acceptWithForcePush'
 *   | 'reject' | 'ban'} RememberedSetting
 */

/**
 * What `subscribe()` resolves with: the requested ids sorted by outcome.
 * @typedef {object} SubscribeOutcome
 * @property {string[]} accepted ids with any `accept*` status
 * @property {string[]} rejected ids the user declined (and any status this module does not know)
 * @property {string[]} banned ids WeChat reports as banned
 * @property {string[]} filtered ids dropped because another requested template has the same title
 */

/**
 * The session kept in storage after `login()`.
 * @typedef {object} Session
 * @property {string} token bearer token for the session routes
 * @property {string} openid the user's openid
 * @property {number} expiresAt milliseconds since the epoch; 0 when the server gave no lifetime
 *   (the session is then used until the server refuses it)
 */

/**
 * @typedef {'GET' | 'POST' | 'PUT' | 'DELETE'} Method
 */

/**
 * @typedef {object} RequestOptions
 * @property {string} [path] path under the base URL, e.g. `/subscriptions`
 * @property {string} [url] the same as `path` (the name `wx.request` uses); a full URL must start
 *   with the base URL
 * @property {Method} [method] defaults to GET
 * @property {number} [timeout] milliseconds, as `wx.request` takes it
 * @property {string | WechatMiniprogram.IAnyObject} [data] request body (sent as JSON) or query
 * @property {Record<string, string>} [header] extra headers
 * @property {boolean} [auth] send the session token (default true)
 */

/**
 * @typedef {object} ClientOptions
 * @property {string} baseUrl the wxsub API base URL, e.g. `https://api.example.com`
 * @property {WechatMiniprogram.Wx} [wx] the `wx` object (defaults to the global one)
 * @property {string} [storageKey] where the session is kept (default `wxsub.session`)
 * @property {boolean} [guide] show the "open settings" modal when needed (default true)
 * @property {Partial<Record<string, string>>} [messages] replaces texts of {@link MESSAGES} by key
 */

/**
 * Codes of the errors this module raises itself. A rejection from the server
 * carries the server's own `error` code instead (e.g. `invalid_session`) and
 * has `status` set.
 */
const CODES = Object.freeze({
  NOT_INITIALIZED: 'not_initialized',
  NO_TEMPLATES: 'no_templates',
  TOO_MANY_TEMPLATES: 'too_many_templates',
  SUBSCRIBE_PENDING: 'subscribe_pending',
  MAIN_SWITCH_OFF: 'main_switch_off',
  UI_NOT_SHOWN: 'ui_not_shown',
  TAP_REQUIRED: 'tap_required',
  INVALID_TEMPLATE: 'invalid_template',
  MIXED_TEMPLATE_TYPES: 'mixed_template_types',
  APP_BANNED: 'app_banned',
  SUBSCRIBE_NETWORK: 'subscribe_network',
  SUBSCRIBE_FAILED: 'subscribe_failed',
  LOGIN_FAILED: 'login_failed',
  NETWORK_ERROR: 'network_error',
  HTTP_ERROR: 'http_error',
  TEMPLATES_NOT_LOADED: 'templates_not_loaded',
})

// what request() takes, and the wx.request options it does not pass on
const REQUEST_OPTIONS = ['path', 'url', 'method', 'data', 'header', 'auth', 'timeout']
const WX_REQUEST_ONLY = [
  'dataType', 'responseType', 'success', 'fail', 'complete', 'enableHttp2', 'enableQuic',
  'enableCache', 'enableHttpDNS', 'httpDNSServiceId', 'enableChunked', 'forceCellularNetwork',
]

/**
 * Default texts: error messages a product can show as they are, and the
 * settings guidance. Replace any of them with `init({messages: {...}})`.
 * @type {Readonly<Record<string, string>>}
 */
const MESSAGES = Object.freeze({
  not_initialized: '请先调用 init({baseUrl})',
  no_templates: '没有要订阅的消息',
  too_many_templates: '一次订阅的消息太多了',
  subscribe_pending: '订阅窗口已打开，请先完成当前的选择',
  main_switch_off: '你已关闭订阅消息，可在设置中重新打开',
  ui_not_shown: '订阅窗口未能打开，请回到小程序后再试',
  tap_required: '请点击按钮来订阅消息',
  invalid_template: '订阅的消息模板不存在',
  mixed_template_types: '一次性订阅和长期订阅不能同时申请',
  app_banned: '该小程序暂时无法订阅消息',
  subscribe_network: '网络不稳定，订阅失败，请稍后再试',
  subscribe_failed: '订阅失败，请稍后再试',
  login_failed: '登录失败，请稍后再试',
  network_error: '网络不稳定，请稍后再试',
  http_error: '服务暂时不可用，请稍后再试',
  templates_not_loaded: '消息模板尚未加载，请稍后再试',
  guide_title: '订阅消息',
  guide_main_switch_off: '你已关闭接收订阅消息，可以在设置中打开“接收订阅消息”。',
  guide_remembered_reject: '你已设置不再接收部分消息，可以在设置的“订阅消息”中重新允许。',
  guide_confirm: '去设置',
  guide_cancel: '暂不',
})

/** Fail codes of wx.requestSubscribeMessage (documented table) → our codes. */
/** @type {Readonly<Record<number, string>>} */
const SUBSCRIBE_FAIL_CODES = Object.freeze({
  10001: CODES.NO_TEMPLATES,
  10002: CODES.SUBSCRIBE_NETWORK,
  10003: CODES.SUBSCRIBE_NETWORK,
  10004: CODES.INVALID_TEMPLATE,
  10005: CODES.UI_NOT_SHOWN,
  20001: CODES.INVALID_TEMPLATE,
  20002: CODES.MIXED_TEMPLATE_TYPES,
  20003: CODES.TOO_MANY_TEMPLATES,
  20004: CODES.MAIN_SWITCH_OFF,
  20005: CODES.APP_BANNED,
  20013: CODES.INVALID_TEMPLATE,
})

/**
 * Failures seen without a documented errCode can only be told apart by their
 * errMsg; casing varies between clients, hence the case-insensitive match.
 * @type {ReadonlyArray<[RegExp, string]>}
 */
const SUBSCRIBE_FAIL_TEXTS = [
  [/main switch is switched off/i, CODES.MAIN_SWITCH_OFF],
  [/tap gesture/i, CODES.TAP_REQUIRED],
  [/last call has not ended/i, CODES.SUBSCRIBE_PENDING],
]

/** A template's alias on the server (`PUT /templates/{id}/alias`), e.g. `order_shipped`. */
const ALIAS = /^[a-z][a-z0-9_]{0,63}$/

/** Base library from which one call may carry 5 template ids instead of 3. */
const FIVE_IDS_FROM = '3.12.1'
/** A session this close to expiry is renewed before use. */
const EXPIRY_MARGIN_MS = 60 * 1000

class WxsubError extends Error {
  /**
   * @param {string} code one of {@link CODES}, or the server's `error` code
   * @param {string} message text a product can show
   * @param {object} [details]
   * @param {number} [details.status] HTTP status, when the server answered
   * @param {any} [details.body] the server's answer body
   * @param {number} [details.errCode] errCode of a failed wx call
   * @param {string} [details.errMsg] errMsg of a failed wx call
   * @param {number} [details.limit] the per-call template limit (too_many_templates)
   * @param {SubscribeOutcome} [details.result] the user's choices when only the report failed
   */
  constructor(code, message, details) {
    super(message)
    this.name = 'WxsubError'
    this.code = code
    const d = details || {}
    /** @type {number | undefined} */
    this.status = d.status
    /** @type {any} */
    this.body = d.body
    /** @type {number | undefined} */
    this.errCode = d.errCode
    /** @type {string | undefined} */
    this.errMsg = d.errMsg
    /** @type {number | undefined} */
    this.limit = d.limit
    /** @type {SubscribeOutcome | undefined} */
    this.result = d.result
  }
}

/**
 * Compares dotted version strings numerically.
 * @param {string} a
 * @param {string} b
 * @returns {number} negative, zero or positive
 */
function compareVersion(a, b) {
  const pa = String(a).split('.')
  const pb = String(b).split('.')
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (parseInt(pa[i], 10) || 0) - (parseInt(pb[i], 10) || 0)
    if (d !== 0) return d
  }
  return 0
}

/**
 * Sorts the requested ids by the status WeChat gave each.
 * @param {string[]} tmplIds
 * @param {SubscribeResult} result
 * @returns {SubscribeOutcome}
 */
function classify(tmplIds, result) {
  /** @type {SubscribeOutcome} */
  const outcome = { accepted: [], rejected: [], banned: [], filtered: [] }
  for (const id of tmplIds) {
    const status = result[id]
    if (typeof status === 'string' && status.indexOf('accept') === 0) outcome.accepted.push(id)
    else if (status === 'ban') outcome.banned.push(id)
    else if (status === 'filter') outcome.filtered.push(id)
    else outcome.rejected.push(id)
  }
  return outcome
}

/**
 * The outcome by the names the caller gave (aliases stay aliases).
 * @param {SubscribeOutcome} byId
 * @param {string[]} ids
 * @param {string[]} names
 * @returns {SubscribeOutcome}
 */
function named(byId, ids, names) {
  /** @param {string[]} list */
  const rename = (list) => list.map((id) => names[ids.indexOf(id)])
  return {
    accepted: rename(byId.accepted),
    rejected: rename(byId.rejected),
    banned: rename(byId.banned),
    filtered: rename(byId.filtered),
  }
}

/**
 * @param {string} text
 * @returns {any}
 */
function parseJson(text) {
  try {
    return JSON.parse(text)
  } catch (e) {
    return undefined
  }
}

class Client {
  /** @param {ClientOptions} options */
  constructor(options) {
    if (!options || typeof options.baseUrl !== 'string' || !options.baseUrl) {
      throw new TypeError('wxsub: init({baseUrl}) needs the API base URL')
    }
    this.baseUrl = options.baseUrl.replace(/\/+$/, '')
    /** @type {WechatMiniprogram.Wx | undefined} */
    this._wx = options.wx
    this.storageKey = options.storageKey || 'wxsub.session'
    this.guideEnabled = options.guide !== false
    /** @type {Record<string, string>} */
    this.messages = Object.assign({}, MESSAGES, options.messages || {})
    /** @type {Session | null | undefined} undefined until read from storage */
    this._session = undefined
    /** @type {Promise<Session> | null} */
    this._loggingIn = null
    this._subscribing = false
    /** @type {Record<string, string> | null} alias → template id, once loadTemplates() ran */
    this._aliases = null
  }

  /** @returns {WechatMiniprogram.Wx} */
  get wx() {
    return this._wx || wx
  }

  /**
   * @param {string} code
   * @param {object} [details]
   * @param {number} [details.errCode]
   * @param {string} [details.errMsg]
   * @param {number} [details.limit]
   * @returns {WxsubError}
   */
  error(code, details) {
    return new WxsubError(code, this.messages[code] || this.messages.subscribe_failed, details)
  }

  /** @returns {Session | null} */
  session() {
    if (this._session === undefined) {
      const stored = this.wx.getStorageSync(this.storageKey)
      this._session = stored && typeof stored.token === 'string' ? stored : null
    }
    return this._session || null
  }

  /** Forgets the session (memory and storage). */
  logout() {
    this._session = null
    this.wx.removeStorageSync(this.storageKey)
  }

  /**
   * `wx.login` → `POST /login` → session kept in storage. Concurrent calls
   * share one login.
   * @returns {Promise<Session>}
   */
  login() {
    if (!this._loggingIn) {
      this._loggingIn = this._login().then(
        (session) => {
          this._loggingIn = null
          return session
        },
        (err) => {
          this._loggingIn = null
          throw err
        }
      )
    }
    return this._loggingIn
  }

  /**
   * One login, retried once with a fresh `wx.login` code when the server
   * answers 503 `wechat_unavailable`: WeChat may have spent the first code
   * without the server seeing its answer, so that code is never sent again.
   * @returns {Promise<Session>}
   */
  async _login() {
    try {
      return await this._loginWithNewCode()
    } catch (err) {
      if (!(err instanceof WxsubError) || err.status !== 503 || err.code !== 'wechat_unavailable') throw err
      return this._loginWithNewCode()
    }
  }

  /** @returns {Promise<Session>} */
  async _loginWithNewCode() {
    const code = await new Promise((resolve, reject) => {
      /** @type {WechatMiniprogram.LoginOption} */
      const option = {
        success: (res) => resolve(res.code),
        fail: (res) => reject(this.error(CODES.LOGIN_FAILED, { errMsg: res.errMsg })),
      }
      this.wx.login(option)
    })
    const body = await this._send({ method: 'POST', path: '/login', data: { code }, auth: false }, null)
    if (!body || typeof body.token !== 'string' || typeof body.openid !== 'string') {
      throw new WxsubError(CODES.HTTP_ERROR, this.messages.http_error, { status: 200, body })
    }
    const expiresIn = body.expires_in
    const expiresAt = typeof expiresIn === 'number' && expiresIn > 0 ? Date.now() + expiresIn * 1000 : 0
    /** @type {Session} */
    const session = { token: body.token, openid: body.openid, expiresAt }
    this._session = session
    this.wx.setStorageSync(this.storageKey, session)
    return session
  }

  /**
   * A session that is not about to expire, logging in when there is none.
   * @returns {Promise<Session>}
   */
  async _validSession() {
    const session = this.session()
    if (session && (session.expiresAt === 0 || session.expiresAt - EXPIRY_MARGIN_MS > Date.now())) return session
    return this.login()
  }

  /**
   * `wx.request` against the API with the session token. Resolves with the
   * parsed JSON body of a 2xx answer; an error answer rejects with a
   * {@link WxsubError} whose `code` is the server's `error`. A 401 logs in
   * again (once, shared by concurrent requests) and retries once.
   * @param {RequestOptions} options
   * @returns {Promise<any>}
   */
  async request(options) {
    options = this._requestOptions(options)
    if (options.auth === false) return this._send(options, null)
    const session = await this._validSession()
    try {
      return await this._send(options, session.token)
    } catch (err) {
      if (!(err instanceof WxsubError) || err.status !== 401) throw err
      return this._send(options, (await this._renew(session.token)).token)
    }
  }

  /**
   * The options of {@link request}, checked: `url` is taken as `path`, and an option this
   * module does not pass to `wx.request` is a TypeError naming it, never silently dropped.
   * @param {RequestOptions} options
   * @returns {RequestOptions & { path: string }}
   */
  _requestOptions(options) {
    if (!options || typeof options !== 'object') throw new TypeError('request() takes an options object')
    for (const name of Object.keys(options)) {
      if (REQUEST_OPTIONS.includes(name)) continue
      if (WX_REQUEST_ONLY.includes(name)) {
        throw new TypeError(`request() option "${name}" is not supported: request() returns a promise of the parsed JSON body`)
      }
      throw new TypeError(`request() has no option "${name}"; it takes ${REQUEST_OPTIONS.join(', ')}`)
    }
    let url = options.url
    if (typeof url === 'string' && /^https?:\/\//.test(url)) {
      if (!url.startsWith(this.baseUrl + '/')) {
        throw new TypeError(`request() url "${url}" is not under this client's baseUrl ${this.baseUrl}`)
      }
      url = url.slice(this.baseUrl.length)
    }
    if (url !== undefined && options.path !== undefined && url !== options.path) {
      throw new TypeError('request() was given both path and url, and they differ')
    }
    const path = options.path !== undefined ? options.path : url
    if (typeof path !== 'string' || !path.startsWith('/')) {
      throw new TypeError('request() needs path (or url): a string starting with "/", e.g. "/subscriptions"')
    }
    return Object.assign({}, options, { path })
  }

  /**
   * A fresh session after `stale` was refused. When another request already
   * renewed it, that session is used; otherwise this joins or starts the one login.
   * @param {string} stale
   * @returns {Promise<Session>}
   */
  _renew(stale) {
    const current = this.session()
    if (current && current.token !== stale && !this._loggingIn) return Promise.resolve(current)
    return this.login()
  }

  /**
   * One `wx.request`, errors mapped, no retry.
   * @param {RequestOptions} options
   * @param {string | null} token
   * @returns {Promise<any>}
   */
  _send(options, token) {
    /** @type {Record<string, string>} */
    const header = Object.assign({ 'content-type': 'application/json' }, options.header || {})
    if (token) header.Authorization = 'Bearer ' + token
    return new Promise((resolve, reject) => {
      /** @type {WechatMiniprogram.RequestOption} */
      const option = {
        url: this.baseUrl + options.path,
        method: options.method || 'GET',
        header,
        dataType: 'json',
        success: (res) => {
          const body = typeof res.data === 'string' ? parseJson(res.data) : res.data
          if (res.statusCode >= 200 && res.statusCode < 300) {
            resolve(body === undefined ? res.data : body)
            return
          }
          const known = body && typeof body.error === 'string'
          const code = known ? body.error : CODES.HTTP_ERROR
          const message = known && typeof body.message === 'string' ? body.message : this.messages.http_error
          reject(new WxsubError(code, message, { status: res.statusCode, body }))
        },
        fail: (res) => reject(this.error(CODES.NETWORK_ERROR, { errMsg: res.errMsg })),
      }
      if (options.data !== undefined) option.data = options.data
      if (options.timeout !== undefined) option.timeout = options.timeout
      this.wx.request(option)
    })
  }

  /**
   * How many template ids one `requestSubscribeMessage` call may carry here.
   * @returns {number}
   */
  maxTemplateIds() {
    let version = ''
    try {
      const w = this.wx
      version = typeof w.getAppBaseInfo === 'function' ? w.getAppBaseInfo().SDKVersion : w.getSystemInfoSync().SDKVersion
    } catch (e) {
      version = ''
    }
    return version && compareVersion(version, FIVE_IDS_FROM) >= 0 ? 5 : 3
  }

  /**
   * Asks for permission to send the given templates, reports the answer to
   * the server and resolves with the ids sorted by outcome. Call it from a
   * tap handler: WeChat opens the popup only for a user's tap.
   * @param {string[]} tmplIds
   * @returns {Promise<SubscribeOutcome>}
   */
  async subscribe(tmplIds) {
    if (!Array.isArray(tmplIds) || tmplIds.length === 0 || tmplIds.some((id) => typeof id !== 'string' || !id)) {
      throw this.error(CODES.NO_TEMPLATES)
    }
    const names = tmplIds
    tmplIds = this._templateIds(names)
    const limit = this.maxTemplateIds()
    if (tmplIds.length > limit) throw this.error(CODES.TOO_MANY_TEMPLATES, { limit })
    if (this._subscribing) throw this.error(CODES.SUBSCRIBE_PENDING)

    this._subscribing = true
    /** @type {WechatMiniprogram.SubscriptionsSetting | null} */
    let setting
    /** @type {SubscribeResult} */
    let result
    try {
      setting = await this._subscriptionsSetting()
      if (setting && setting.mainSwitch === false) {
        await this._guide('guide_main_switch_off')
        throw this.error(CODES.MAIN_SWITCH_OFF)
      }
      result = await this._requestSubscribeMessage(tmplIds)
    } finally {
      this._subscribing = false
    }

    const byId = classify(tmplIds, result)
    const items = (setting && setting.itemSettings) || {}
    const remembered = byId.rejected.filter((id) => items[id] === 'reject')
    const outcome = named(byId, tmplIds, names)
    const report = this.request({ method: 'POST', path: '/subscriptions', data: result }).then(
      () => null,
      (/** @type {any} */ err) => err
    )
    if (remembered.length > 0) await this._guide('guide_remembered_reject')
    const failed = await report
    if (failed) {
      failed.result = outcome
      throw failed
    }
    return outcome
  }

  /**
   * Loads the server's template aliases, so `subscribe` can take names such as
   * `order_shipped` in place of template ids. Call it when the page loads:
   * `subscribe` must reach WeChat straight from the tap, with no request first.
   * @returns {Promise<Record<string, string>>} alias → template id
   */
  async loadTemplates() {
    const answer = await this.request({ method: 'GET', path: '/subscriptions/templates' })
    this._aliases = (answer && answer.templates) || {}
    return Object.assign({}, this._aliases)
  }

  /**
   * The template ids of `names`: aliases from `loadTemplates()`, ids as they are.
   * @param {string[]} names
   * @returns {string[]}
   */
  _templateIds(names) {
    const aliases = this._aliases
    const needed = names.filter((name) => ALIAS.test(name) && !(aliases && aliases[name]))
    if (needed.length > 0 && !aliases) throw this.error(CODES.TEMPLATES_NOT_LOADED)
    return names.map((name) => (aliases && aliases[name]) || name)
  }

  /**
   * The caller's grants per template, as the server reports them.
   * @returns {Promise<any>}
   */
  grants() {
    return this.request({ method: 'GET', path: '/subscriptions' })
  }

  /**
   * `getSetting({withSubscriptions: true})`; null when unavailable (old base
   * library, plugin, failure): the popup is then tried without the check.
   * @returns {Promise<WechatMiniprogram.SubscriptionsSetting | null>}
   */
  _subscriptionsSetting() {
    return new Promise((resolve) => {
      /** @type {WechatMiniprogram.GetSettingOption} */
      const option = {
        withSubscriptions: true,
        success: (res) => resolve(res.subscriptionsSetting || null),
        fail: () => resolve(null),
      }
      this.wx.getSetting(option)
    })
  }

  /**
   * @param {string[]} tmplIds
   * @returns {Promise<SubscribeResult>}
   */
  _requestSubscribeMessage(tmplIds) {
    return new Promise((resolve, reject) => {
      /** @type {WechatMiniprogram.RequestSubscribeMessageOption} */
      const option = {
        tmplIds: tmplIds.slice(),
        success: (res) => resolve(res),
        fail: (res) => {
          const code = this._failCode(res.errCode, res.errMsg)
          const err = this.error(code, { errCode: res.errCode, errMsg: res.errMsg })
          if (code === CODES.MAIN_SWITCH_OFF) this._guide('guide_main_switch_off').then(() => reject(err))
          else reject(err)
        },
      }
      this.wx.requestSubscribeMessage(option)
    })
  }

  /**
   * @param {number | undefined} errCode
   * @param {string | undefined} errMsg
   * @returns {string}
   */
  _failCode(errCode, errMsg) {
    if (typeof errCode === 'number' && SUBSCRIBE_FAIL_CODES[errCode]) return SUBSCRIBE_FAIL_CODES[errCode]
    for (const [pattern, code] of SUBSCRIBE_FAIL_TEXTS) {
      if (pattern.test(errMsg || '')) return code
    }
    return CODES.SUBSCRIBE_FAILED
  }

  /**
   * A modal explaining the situation; confirming opens the settings page.
   * Never rejects.
   * @param {string} contentKey
   * @returns {Promise<void>}
   */
  _guide(contentKey) {
    if (!this.guideEnabled) return Promise.resolve()
    return new Promise((resolve) => {
      /** @type {WechatMiniprogram.ShowModalOption} */
      const modal = {
        title: this.messages.guide_title,
        content: this.messages[contentKey],
        confirmText: this.messages.guide_confirm,
        cancelText: this.messages.guide_cancel,
        success: (res) => {
          if (!res.confirm) {
            resolve()
            return
          }
          /** @type {WechatMiniprogram.OpenSettingOption} */
          const open = { withSubscriptions: true, complete: () => resolve() }
          this.wx.openSetting(open)
        },
        fail: () => resolve(),
      }
      this.wx.showModal(modal)
    })
  }
}

/** @type {Client | null} */
let defaultClient = null

/** @returns {Client} */
function client() {
  if (!defaultClient) throw new WxsubError(CODES.NOT_INITIALIZED, MESSAGES.not_initialized)
  return defaultClient
}

/**
 * Sets the API base URL (and options) for the module-level functions. Call
 * once, e.g. in `App({onLaunch})`.
 * @param {ClientOptions} options
 * @returns {Client}
 */
function init(options) {
  defaultClient = new Client(options)
  return defaultClient
}

/**
 * A client of its own, for more than one backend or for tests.
 * @param {ClientOptions} options
 * @returns {Client}
 */
function createClient(options) {
  return new Client(options)
}

/**
 * Runs `fn` on the default client now (not on a later tick: `subscribe` must
 * reach wx inside the tap handler), turning a throw into a rejection.
 * @template T
 * @param {(c: Client) => Promise<T>} fn
 * @returns {Promise<T>}
 */
function withClient(fn) {
  try {
    return fn(client())
  } catch (err) {
    return Promise.reject(err)
  }
}

module.exports = {
  init,
  createClient,
  /** @returns {Promise<Session>} */
  login: () => withClient((c) => c.login()),
  /** @param {RequestOptions} options @returns {Promise<any>} */
  request: (options) => withClient((c) => c.request(options)),
  /** @param {string[]} tmplIds @returns {Promise<SubscribeOutcome>} */
  subscribe: (tmplIds) => withClient((c) => c.subscribe(tmplIds)),
  /** @returns {Promise<any>} */
  grants: () => withClient((c) => c.grants()),
  /** @returns {Promise<Record<string, string>>} */
  loadTemplates: () => withClient((c) => c.loadTemplates()),
  /** @returns {void} */
  logout: () => client().logout(),
  Client,
  WxsubError,
  CODES,
  MESSAGES,
  classify,
  compareVersion,
}
