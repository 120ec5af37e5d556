// The handlers' Powertools logger reads its level once, when it is created: import this module before any handler
// so that full local executions in tests do not print every engine event. `POWERTOOLS_LOG_LEVEL=INFO npx vitest`
// brings the logs back.
process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
