// The handlers' Powertools logger reads its level once, when it is created: import this module before any handler so
// the full executions of §4 do not print every engine event. `POWERTOOLS_LOG_LEVEL=INFO npm run bench` shows them.
process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
export {};
