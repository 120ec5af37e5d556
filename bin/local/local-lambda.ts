import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const RUNTIME = join(dirname(fileURLToPath(import.meta.url)), 'lambda-runtime.mjs');

/** A function as the synthesized template and its assets describe it: what `cdk deploy` would create. */
export interface DeployedFunction {
  /** The function's logical id in the template. */
  readonly logicalId: string;
  /** The staged asset directory: the exact files `cdk deploy` zips and uploads. */
  readonly codeDirectory: string;
  /** `index.handler` */
  readonly handler: string;
  readonly environment: Readonly<Record<string, string>>;
  readonly timeoutSeconds: number;
  readonly memorySize: number;
}

/** The Lambda error document a failed invocation returns; Step Functions takes `errorType` as the task's Error. */
export interface LambdaErrorDocument {
  readonly errorType: string;
  readonly errorMessage: string;
  readonly trace: readonly string[];
}

/** A failed invocation, carrying the error document as Lambda reports it. */
export class LambdaInvocationError extends Error {
  override readonly name = 'LambdaInvocationError';
  constructor(readonly document: LambdaErrorDocument) {
    super(`${document.errorType}: ${document.errorMessage}`);
  }
}

type Reply = { id: string; ok: true; payload: string } | { id: string; ok: false; error: LambdaErrorDocument };

/**
 * One warm execution environment of a deployed function: a `node` child process running the function's bundle from
 * its asset directory under lambda-runtime.mjs, with the function's environment and nothing of this process's
 * (no TypeScript loader, no test globals). Started at the first invocation and reused, as Lambda reuses a warm
 * environment; invocations are serialised, as one environment serves one request at a time.
 */
export class LocalLambda {
  private child: ChildProcess | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly pending = new Map<string, (reply: Reply) => void>();

  constructor(
    private readonly fn: DeployedFunction,
    private readonly options: {
      /** Variables the Lambda service or this machine adds: region, credentials, the Data API endpoint. */
      readonly runtimeEnvironment: Readonly<Record<string, string>>;
      /** Each line the function writes to stdout or stderr (its structured logs). */
      readonly onLog?: (line: string) => void;
    },
  ) {}

  invoke(event: unknown): Promise<unknown> {
    const run = this.queue.then(() => this.invokeNow(event));
    this.queue = run.catch(() => {});
    return run;
  }

  async close(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill();
    await exited;
  }

  private async invokeNow(event: unknown): Promise<unknown> {
    const child = this.start();
    const id = randomUUID();
    const reply = await new Promise<Reply>((resolve) => {
      this.pending.set(id, resolve);
      child.send({ id, event, deadlineMs: Date.now() + this.fn.timeoutSeconds * 1000 });
    });
    if (reply.ok) return JSON.parse(reply.payload) as unknown;
    throw new LambdaInvocationError(reply.error);
  }

  private start(): ChildProcess {
    if (this.child && this.child.exitCode === null) return this.child;
    const child = fork(RUNTIME, [], {
      cwd: this.fn.codeDirectory,
      execArgv: [],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        // Set by the Lambda service in every execution environment.
        LAMBDA_TASK_ROOT: this.fn.codeDirectory,
        _HANDLER: this.fn.handler,
        AWS_LAMBDA_FUNCTION_NAME: this.fn.logicalId,
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(this.fn.memorySize),
        AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
        TZ: ':UTC',
        ...this.options.runtimeEnvironment,
        ...this.fn.environment,
      },
    });
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => this.options.onLog?.(line));
    }
    child.on('message', (reply: Reply) => {
      const waiter = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      waiter?.(reply);
    });
    child.on('exit', (code, signal) => {
      // The process died mid-invocation: Lambda reports Runtime.ExitError and starts a new environment next time.
      for (const [id, waiter] of this.pending) {
        this.pending.delete(id);
        waiter({
          id,
          ok: false,
          error: {
            errorType: 'Runtime.ExitError',
            errorMessage: `RequestId: ${id} Error: Runtime exited with error: ${signal ?? `exit status ${code}`}`,
            trace: [],
          },
        });
      }
    });
    this.child = child;
    return child;
  }
}
