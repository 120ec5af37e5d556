import { createHash, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SettingsOverrides } from '../../lambdas/core/index.ts';
import { parseLambdaEnvironment } from '../../lambdas/handlers/commons/environment.ts';
import type { DrainSource } from '../../lib/drain-source.ts';
import { startDataApiEmulator, type DataApiEmulator } from './data-api-emulator/index.ts';
import { newAssemblyDirectory } from './local-assemblies.ts';
import { LambdaInvocationError, LocalLambda } from './local-lambda.ts';
import { ExecutionError, StateMachine } from './step-functions-interpreter.ts';
import {
  LOCAL_ENV,
  START_EXECUTION,
  synthesizeStateMachine,
  type SynthesisOptions,
  type SynthesizedStateMachine,
} from './synthesized-state-machine.ts';

const STATE_MACHINE_ARN = `arn:aws:states:${LOCAL_ENV.region}:${LOCAL_ENV.account}:stateMachine:EmcUpgradeLocal-Upgrade`;

/** One entry of the local execution's event log (StateEntered, StateExited, StateRetried, ExecutionFailed, ...). */
export type EventLog = ReturnType<StateMachine['run']>['eventLogs'] extends AsyncGenerator<infer E> ? E : never;

export interface LocalExecutionOptions {
  /** The PostgreSQL database the emulated Data API serves. */
  readonly databaseUrl: string;
  readonly migrationsDirectory: string;
  readonly drainSource: DrainSource;
  /** The execution input, as an operator would type it in the console. */
  readonly input: unknown;
  readonly executionName?: string;
  /** The construct's batch settings for this local deployment (they reach the functions' environment). */
  readonly settings?: SettingsOverrides;
  /** The construct's prop of that name (how many migrate calls before continuing in a new execution). */
  readonly maxMigrateCallsPerExecution?: number;
  /** Milliseconds the drain Wait state and Retry intervals take locally instead of their deployed seconds. */
  readonly waitMs?: number;
  readonly retryMs?: number;
  /**
   * The Data API the functions call: an emulator a test controls (faults, latency). @default an emulator started
   * over `databaseUrl` for this execution
   */
  readonly dataApi?: DataApiEmulator;
  /** The functions' log level (POWERTOOLS_LOG_LEVEL). @default this process's POWERTOOLS_LOG_LEVEL, else INFO */
  readonly logLevel?: string;
  readonly onEvent?: (event: EventLog) => void;
  /** Called once the CDK app is synthesized (or its assembly reused), with the milliseconds it took. */
  readonly onSynthesized?: (ms: number) => void;
  /** Each line a function writes (its structured JSON logs). */
  readonly onLog?: (line: string) => void;
}

export interface LocalExecutionResult {
  readonly executionArn: string;
  readonly status: 'SUCCEEDED' | 'FAILED';
  readonly output: unknown;
  /** The Fail state's Error and Cause, for a failed execution. */
  readonly error?: string;
  readonly cause?: string;
  readonly events: readonly EventLog[];
  /** The execution this one started to continue a long migration ("Continue in a new execution"), run after it. */
  readonly continuedIn?: LocalExecutionResult;
}

/**
 * Runs one execution of the synthesized state machine with aws-local-stepfunctions, each Task bound to the deployed
 * function its Resource names: the minified bundle from the function's staged CDK asset (the bytes `cdk deploy`
 * uploads), run by plain `node` in a process of its own with the environment the template gives it, talking to an
 * RDS Data API emulator through the real AWS SDK. A thrown error reaches the state machine as Lambda reports it
 * (errorType as the Error, the error document as the Cause), so Retry, Catch and the failure report behave as in AWS.
 */
export async function runLocalExecution(options: LocalExecutionOptions): Promise<LocalExecutionResult> {
  const dataApi = options.dataApi ?? (await startDataApiEmulator({ postgresUrl: options.databaseUrl }));
  const lambdas: LocalLambda[] = [];
  try {
    const synthesisStarted = Date.now();
    const synthesized = synthesizeOnce({
      migrationsDirectory: options.migrationsDirectory,
      drainSource: options.drainSource,
      databaseName: databaseNameOf(options.databaseUrl),
      settings: options.settings,
      maxMigrateCallsPerExecution: options.maxMigrateCallsPerExecution,
    });
    options.onSynthesized?.(Date.now() - synthesisStarted);
    const drainFunction = synthesized.functions.get('drain');
    if (!drainFunction) throw new Error('The synthesized state machine has no drain function');
    if (parseLambdaEnvironment(drainFunction.environment).drainSource.kind === 'ecs') {
      throw new Error('An ECS drain source cannot run locally (the drain function would call AWS ECS); use DrainSource.databaseSessions.');
    }
    const runtimeEnvironment = localRuntimeEnvironment(dataApi, options.logLevel ?? process.env.POWERTOOLS_LOG_LEVEL ?? 'INFO');
    const functions = new Map(
      [...synthesized.functions].map(([task, fn]) => {
        const local = new LocalLambda(fn, { runtimeEnvironment, onLog: options.onLog });
        lambdas.push(local);
        return [task, local] as const;
      }),
    );
    const lambdaTasks = Object.fromEntries(
      [...synthesized.tasks].map(([stateName, task]) => [stateName, asStepFunctionsTask(functions.get(task)!)]),
    );
    const waitTimeOverrides = Object.fromEntries(
      Object.entries(synthesized.definition.States)
        .filter(([, s]) => s.Type === 'Wait')
        .map(([name]) => [name, options.waitMs ?? 500]),
    );
    const retryIntervalOverrides = Object.fromEntries(
      Object.entries(synthesized.definition.States)
        .filter(([, s]) => s.Type === 'Task')
        .map(([name]) => [name, options.retryMs ?? 200]),
    );
    const startExecutionStates = Object.entries(synthesized.definition.States)
      .filter(([, s]) => s.Type === 'Task' && (s as { Resource?: string }).Resource === START_EXECUTION)
      .map(([name]) => name);

    const runOne = async (input: unknown, name: string): Promise<LocalExecutionResult> => {
      const executionArn = `arn:aws:states:${LOCAL_ENV.region}:${LOCAL_ENV.account}:execution:EmcUpgradeLocal:${name}`;
      let continuation: { name: string; input: unknown } | undefined;
      // StartExecution (the Step Functions API reference): the input is a JSON string, the answer the new
      // execution's ARN and start date. The new execution runs once this one has ended.
      const startExecution = async (parameters: unknown) => {
        const { Input } = parameters as { Input: unknown };
        continuation = { name: randomUUID(), input: typeof Input === 'string' ? (JSON.parse(Input) as unknown) : Input };
        return {
          ExecutionArn: `arn:aws:states:${LOCAL_ENV.region}:${LOCAL_ENV.account}:execution:EmcUpgradeLocal:${continuation.name}`,
          StartDate: new Date().toISOString(),
        } as never;
      };
      const taskResourceLocalHandlers = {
        ...lambdaTasks,
        ...Object.fromEntries(startExecutionStates.map((state) => [state, startExecution])),
      };
      const machine = new StateMachine(synthesized.definition, { validationOptions: { checkArn: true, checkPaths: true } });
      const execution = machine.run(input as never, {
        overrides: { taskResourceLocalHandlers, waitTimeOverrides, retryIntervalOverrides },
        context: {
          Execution: { Id: executionArn, Name: name, StartTime: new Date().toISOString(), Input: input as never },
          StateMachine: { Id: STATE_MACHINE_ARN, Name: 'EmcUpgradeLocal-Upgrade' },
        },
      });
      const events: EventLog[] = [];
      const collecting = (async () => {
        for await (const event of execution.eventLogs) {
          events.push(event);
          options.onEvent?.(event);
        }
      })();
      let result: LocalExecutionResult;
      try {
        const output = await execution.result;
        await collecting;
        result = { executionArn, status: 'SUCCEEDED', output, events };
      } catch (error) {
        await collecting;
        if (!(error instanceof ExecutionError)) throw error;
        const failed = events.find((e) => e.type === 'ExecutionFailed') as { Error?: string; Cause?: unknown } | undefined;
        result = {
          executionArn,
          status: 'FAILED',
          output: null,
          error: failed?.Error,
          cause: typeof failed?.Cause === 'string' ? failed.Cause : JSON.stringify(failed?.Cause),
          events,
        };
      }
      return continuation ? { ...result, continuedIn: await runOne(continuation.input, continuation.name) } : result;
    };

    return await runOne(options.input, options.executionName ?? `local-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  } finally {
    await Promise.all(lambdas.map((l) => l.close()));
    if (!options.dataApi) await dataApi.stop();
  }
}

/** What the Lambda service (and this machine) adds to a local function's own environment. */
export function localRuntimeEnvironment(dataApi: DataApiEmulator, logLevel: string): Record<string, string> {
  return {
    AWS_REGION: LOCAL_ENV.region,
    AWS_DEFAULT_REGION: LOCAL_ENV.region,
    POWERTOOLS_LOG_LEVEL: logLevel,
    // The deployed runtime is Node.js 24; the SDK's warning about an older Node.js concerns only this machine.
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    ...dataApi.environment,
  };
}

/**
 * One synthesis per deployment in this process: runs with the same migrations (by content), drain source, database
 * and settings reuse the cloud assembly, as executions of one deployed state machine share its functions. The
 * assemblies live in a temporary directory removed when the process exits (local-assemblies.ts).
 */
const assemblies = new Map<string, SynthesizedStateMachine>();
function synthesizeOnce(options: Omit<SynthesisOptions, 'outdir'>): SynthesizedStateMachine {
  const key = JSON.stringify([directoryHash(options.migrationsDirectory), options.drainSource, options.databaseName, options.settings, options.maxMigrateCallsPerExecution]);
  const cached = assemblies.get(key);
  if (cached) return cached;
  const synthesized = synthesizeStateMachine({ ...options, outdir: newAssemblyDirectory() });
  assemblies.set(key, synthesized);
  return synthesized;
}

function directoryHash(directory: string): string {
  const hash = createHash('sha256');
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(dir, entry.name);
      hash.update(path).update('\0');
      if (entry.isDirectory()) walk(path);
      else hash.update(readFileSync(path)).update('\0');
    }
  };
  walk(directory);
  return hash.digest('hex');
}

/**
 * A Task's Lambda invocation as Step Functions sees it: the result payload, or a failure whose Error is the error
 * document's errorType and whose Cause is the document itself (JSON), as in the Lambda integration.
 */
function asStepFunctionsTask(fn: LocalLambda) {
  return async (input: unknown) => {
    try {
      return (await fn.invoke(input)) as never;
    } catch (error) {
      if (!(error instanceof LambdaInvocationError)) throw error;
      const reported = new Error(JSON.stringify(error.document));
      reported.name = error.document.errorType;
      throw reported;
    }
  };
}

function databaseNameOf(databaseUrl: string): string {
  const name = decodeURIComponent(new URL(databaseUrl).pathname.replace(/^\//, ''));
  return name === '' ? 'postgres' : name;
}
