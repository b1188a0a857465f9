// @ts-check
const wxsub = require('wxsub-miniprogram')
const config = require('./config')

App({
  onLaunch() {
    wxsub.init({ baseUrl: config.baseUrl })
  },
})
