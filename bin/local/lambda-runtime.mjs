// A stand-in for the AWS Lambda Node.js runtime, run by plain `node` (no TypeScript loader) in a child process of
// the local runner, one process per function as one warm Lambda execution environment. It loads the function's
// deployed code from LAMBDA_TASK_ROOT with the `_HANDLER` setting (`index.handler`: file index.mjs, export
// `handler`) and answers each invocation the parent sends over IPC with the handler's JSON result or, for a thrown
// error, the Lambda error document `{ errorType, errorMessage, trace }` whose errorType is the error's `name`
// (as the runtime interface client formats it: aws-lambda-nodejs-runtime-interface-client, Errors.js toFormatted).
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [moduleName, exportName] = splitHandler(process.env._HANDLER ?? 'index.handler');
const loaded = import(pathToFileURL(join(process.env.LAMBDA_TASK_ROOT ?? process.cwd(), `${moduleName}.mjs`)).href).then(
  (module) => {
    const handler = module[exportName];
    if (typeof handler !== 'function') {
      const error = new Error(`${moduleName}.${exportName} is undefined or not exported`);
      error.name = 'Runtime.HandlerNotFound';
      throw error;
    }
    return handler;
  },
);
// An init failure is reported on the first invocation, as Lambda does; until then it must not crash the process.
loaded.catch(() => {});

process.on('message', async (message) => {
  const { id, event, deadlineMs } = message;
  const context = {
    awsRequestId: id,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: '$LATEST',
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    getRemainingTimeInMillis: () => Math.max(0, deadlineMs - Date.now()),
  };
  try {
    const handler = await loaded;
    const result = await handler(event, context);
    // Lambda serialises the result as JSON; `undefined` becomes null.
    process.send({ id, ok: true, payload: JSON.stringify(result ?? null) });
  } catch (error) {
    process.send({ id, ok: false, error: formatError(error) });
  }
});

function splitHandler(handler) {
  const dot = handler.lastIndexOf('.');
  return [handler.slice(0, dot), handler.slice(dot + 1)];
}

function formatError(error) {
  if (error instanceof Error) {
    return { errorType: error.name, errorMessage: error.message, trace: (error.stack ?? '').split('\n') };
  }
  return { errorType: typeof error, errorMessage: String(error), trace: [] };
}
