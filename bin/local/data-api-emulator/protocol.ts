import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { DataApiError } from './errors.ts';
import type { Operation } from './faults.ts';

/**
 * The RDS Data API's wire protocol, restJson1, as @aws-sdk/client-rds-data speaks it: `POST /Execute`,
 * `/BeginTransaction`, `/CommitTransaction`, `/RollbackTransaction` (the operations' `http` traits in the service
 * model), a JSON body both ways, and an error as its HTTP status, the exception's name in the `x-amzn-ErrorType`
 * header (where the SDK's loadRestJsonErrorCode looks first) and `{ "message": ... }` with the exception's other
 * members in the body. Request signatures are not checked: there is no IAM here.
 */
export const ROUTES: Readonly<Record<string, Operation>> = {
  '/Execute': 'ExecuteStatement',
  '/BeginTransaction': 'BeginTransaction',
  '/CommitTransaction': 'CommitTransaction',
  '/RollbackTransaction': 'RollbackTransaction',
};

export type Handler = (operation: Operation, body: Readonly<Record<string, unknown>>) => Promise<object>;

export async function listen(handle: Handler): Promise<{ server: http.Server; endpoint: string }> {
  const server = http.createServer((request, response) => {
    void serve(request, response, handle);
  });
  // Connections the SDK keeps alive must not hold the process open or delay stop().
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return { server, endpoint: `http://127.0.0.1:${port}` };
}

async function serve(request: http.IncomingMessage, response: http.ServerResponse, handle: Handler): Promise<void> {
  try {
    const operation = request.method === 'POST' ? ROUTES[new URL(request.url ?? '/', 'http://x').pathname] : undefined;
    const text = await readBody(request);
    if (operation === undefined) {
      throw new DataApiError('UnknownOperationException', `No operation at ${request.method} ${request.url}.`);
    }
    let body: unknown;
    try {
      body = text === '' ? {} : JSON.parse(text);
    } catch {
      throw new DataApiError('SerializationException', 'The request body is not valid JSON.');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new DataApiError('SerializationException', 'The request body is not a JSON object.');
    }
    send(response, 200, await handle(operation, body as Record<string, unknown>));
  } catch (error) {
    const failure =
      error instanceof DataApiError
        ? error
        : new DataApiError('InternalServerErrorException', `Emulator failure: ${(error as Error).message}`);
    send(response, failure.status, { message: failure.message, ...failure.members }, failure.name);
  }
}

function readBody(request: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

function send(response: http.ServerResponse, status: number, body: object, errorType?: string): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': randomUUID(),
    ...(errorType ? { 'x-amzn-errortype': errorType } : {}),
  });
  response.end(text);
}
