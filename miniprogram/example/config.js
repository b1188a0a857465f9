// @ts-check
// Fill in your own values: the API URL printed by `sam deploy` (Outputs) and
// template ids from the mini program admin console (功能 → 订阅消息).
module.exports = {
  baseUrl: 'https://YOUR-API-ID.execute-api.ap-east-1.amazonaws.com',
  templateIds: ['YOUR_TEMPLATE_ID_1', 'YOUR_TEMPLATE_ID_2'],
}
