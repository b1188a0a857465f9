// @ts-check
const wxsub = require('wxsub-miniprogram')
const config = require('../../config')

Page({
  data: {
    openid: '',
    status: '',
    grants: '',
  },

  onLoad() {
    wxsub
      .login()
      .then((session) => {
        this.setData({ openid: session.openid })
        return this.showGrants()
      })
      .catch((/** @type {any} */ err) => this.setData({ status: err.message }))
  },

  // bindtap handler: WeChat opens the subscription popup only from a tap.
  onSubscribeTap() {
    wxsub
      .subscribe(config.templateIds)
      .then((outcome) => {
        const status = outcome.accepted.length > 0 ? '订阅成功' : '没有订阅任何消息'
        this.setData({ status })
        return this.showGrants()
      })
      .catch((/** @type {any} */ err) => {
        // err.code names the case (main_switch_off, tap_required, ...);
        // err.message is a text the page can show as it is.
        this.setData({ status: err.message })
      })
  },

  showGrants() {
    return wxsub.grants().then((grants) => this.setData({ grants: JSON.stringify(grants, null, 2) }))
  },
})
