import './promise-with-resolvers.ts';
import type { ECSClient } from '@aws-sdk/client-ecs';
import { ExecutionError, StateMachine } from 'aws-local-stepfunctions';
import type { SettingsOverrides } from '../../lambdas/core/settings.ts';
import { createWorkflowHandlers } from '../../lambdas/handlers/workflow-handlers.ts';
import type { DrainSource } from '../../lib/drain-source.ts';
import { localDependencies } from './local-dependencies.ts';
import { LOCAL_ENV, synthesizeStateMachine } from './synthesized-state-machine.ts';

/** One entry of the local execution's event log (StateEntered, StateExited, StateRetried, ExecutionFailed, ...). */
export type EventLog = ReturnType<StateMachine['run']>['eventLogs'] extends AsyncGenerator<infer E> ? E : never;

export interface LocalExecutionOptions {
  readonly databaseUrl: string;
  readonly migrationsDirectory: string;
  readonly drainSource: DrainSource;
  /** The execution input, as an operator would type it in the console. */
  readonly input: unknown;
  readonly executionName?: string;
  /** Overrides of the construct's batch settings for local runs. */
  readonly settings?: SettingsOverrides;
  /** Milliseconds the drain Wait state and Retry intervals take locally instead of their deployed seconds. */
  readonly waitMs?: number;
  readonly retryMs?: number;
  readonly ecs?: ECSClient;
  readonly onEvent?: (event: EventLog) => void;
}

export interface LocalExecutionResult {
  readonly executionArn: string;
  readonly status: 'SUCCEEDED' | 'FAILED';
  readonly output: unknown;
  /** The Fail state's Error and Cause, for a failed execution. */
  readonly error?: string;
  readonly cause?: string;
  readonly events: readonly EventLog[];
}

/**
 * Runs one execution of the synthesized state machine with aws-local-stepfunctions, each Task bound to the real
 * handler of the function its Resource names. A thrown error reaches the state machine the way Lambda reports it
 * (error name as Error, Lambda's JSON envelope as Cause), so Retry, Catch and the failure report behave as in AWS.
 */
export async function runLocalExecution(options: LocalExecutionOptions): Promise<LocalExecutionResult> {
  const synthesized = synthesizeStateMachine({ migrationsDirectory: options.migrationsDirectory, drainSource: options.drainSource });
  const deps = localDependencies({
    databaseUrl: options.databaseUrl,
    migrationsDirectory: options.migrationsDirectory,
    functionEnvironment: synthesized.environment,
    settings: options.settings,
    ecs: options.ecs,
  });
  const handlers = createWorkflowHandlers(deps);
  const taskResourceLocalHandlers = Object.fromEntries(
    [...synthesized.tasks].map(([stateName, task]) => [stateName, asLambda(handlers[task])]),
  );
  const waitTimeOverrides = Object.fromEntries(
    Object.entries(synthesized.definition.States)
      .filter(([, s]) => s.Type === 'Wait')
      .map(([name]) => [name, options.waitMs ?? 500]),
  );
  const retryIntervalOverrides = Object.fromEntries([...synthesized.tasks.keys()].map((name) => [name, options.retryMs ?? 200]));

  const name = options.executionName ?? `local-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  const executionArn = `arn:aws:states:${LOCAL_ENV.region}:${LOCAL_ENV.account}:execution:EmcUpgradeLocal:${name}`;
  const machine = new StateMachine(synthesized.definition, { validationOptions: { checkArn: true, checkPaths: true } });
  const execution = machine.run(options.input as never, {
    overrides: { taskResourceLocalHandlers, waitTimeOverrides, retryIntervalOverrides },
    context: {
      Execution: { Id: executionArn, Name: name, StartTime: new Date().toISOString(), Input: options.input as never },
    },
  });
  const events: EventLog[] = [];
  const collecting = (async () => {
    for await (const event of execution.eventLogs) {
      events.push(event);
      options.onEvent?.(event);
    }
  })();
  try {
    const output = await execution.result;
    await collecting;
    return { executionArn, status: 'SUCCEEDED', output, events };
  } catch (error) {
    await collecting;
    if (!(error instanceof ExecutionError)) throw error;
    const failed = events.find((e) => e.type === 'ExecutionFailed') as { Error?: string; Cause?: unknown } | undefined;
    return {
      executionArn,
      status: 'FAILED',
      output: null,
      error: failed?.Error,
      cause: typeof failed?.Cause === 'string' ? failed.Cause : JSON.stringify(failed?.Cause),
      events,
    };
  } finally {
    await deps.close();
  }
}

/** Reports a handler's failure as Lambda does: `errorType` is the error's name, the Cause is the JSON envelope. */
function asLambda(handler: (event: unknown) => Promise<unknown>) {
  return async (input: unknown) => {
    try {
      return (await handler(input)) as never;
    } catch (error) {
      const original = error instanceof Error ? error : new Error(String(error));
      const reported = new Error(
        JSON.stringify({ errorType: original.name, errorMessage: original.message, trace: (original.stack ?? '').split('\n') }),
      );
      reported.name = original.name;
      throw reported;
    }
  };
}
