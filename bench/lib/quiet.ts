// The handlers' Powertools logger reads its level once, when it is created: import this module before any handler so
// the full executions of §4 do not print every engine event. `POWERTOOLS_LOG_LEVEL=INFO npm run bench` shows them.
process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
// The SDK's notice that its 2027 releases need Node 22 would interrupt the progress lines of §7 on Node 20.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
export {};
