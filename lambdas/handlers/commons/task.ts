import type * as z from 'zod/mini';
import { EmcError, InputError } from '../../core/errors.ts';
import { TASK_STATE_NAMES } from '../../core/workflow/state-names.ts';
import { parseWith, type PhaseTask, type TaskFailure } from '../../core/workflow/task-contract.ts';
import { logger } from './logger.ts';

/**
 * A task's failure as it leaves the handler. Lambda's error document is `{"errorType": error.name, "errorMessage":
 * error.message, ...}`: `name` stays the typed error's class name (Step Functions Retry and Catch match on it), and
 * the message is the structured failure record as JSON, which "Record failure" parses with the task contract.
 */
export class TaskFailedError extends Error {
  override readonly name: string;
  constructor(readonly record: TaskFailure, options: { cause: unknown }) {
    super(JSON.stringify(record), options);
    this.name = record.errorClass;
  }
}

/**
 * Step Functions keeps at most 32,768 characters of a failure's cause (LambdaFunctionFailedEventDetails, Step
 * Functions API reference): the record's message is cut well below that, so the record stays whole JSON even with
 * its escaping and the error document around it.
 */
const MAX_MESSAGE_CHARS = 12_000;

/** The failure record of what a task threw: the typed error's fields, never parsed from its message. */
export function failureRecord(phase: PhaseTask, error: unknown): TaskFailure {
  const location = error instanceof EmcError ? error.location : {};
  const message = error instanceof Error ? error.message : String(error);
  return {
    errorClass: error instanceof Error ? error.name : 'Error',
    message: message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS)}… (${message.length - MAX_MESSAGE_CHARS} more characters in the function's log)` : message,
    transient: error instanceof EmcError ? error.transient : false,
    nextAction: error instanceof EmcError ? error.nextAction : null,
    phase,
    stepId: location.stepId ?? null,
    file: location.file ?? null,
    line: location.line ?? null,
    sqlState: location.sqlState ?? null,
    transactional: location.transactional ?? null,
  };
}

/**
 * Wraps one phase task: parses its event with the contract (an InputError naming the fields otherwise), sets the
 * logger keys, and turns what it throws into a TaskFailedError carrying the failure record.
 */
export function phaseTask<E, R>(
  name: PhaseTask,
  schema: z.ZodMiniType<E>,
  work: (event: E) => Promise<R>,
): (event: unknown) => Promise<R> {
  return async (raw) => {
    logger.appendKeys({ state: TASK_STATE_NAMES[name] });
    try {
      const event = parseEvent(schema, raw);
      return await work(event);
    } catch (error) {
      logger.error('task failed', { errorName: (error as Error).name, error: (error as Error).message });
      throw new TaskFailedError(failureRecord(name, error), { cause: error });
    } finally {
      logger.removeKeys(['stepId']);
    }
  };
}

/**
 * Parses a task's event. The state machine builds these events, so a malformed one means the definition and the
 * handlers disagree (or someone invoked the function by hand): an InputError naming the fields, never a raw zod error.
 */
export function parseEvent<E>(schema: z.ZodMiniType<E>, event: unknown): E {
  const parsed = parseWith(schema, event);
  if (parsed.ok) return parsed.value;
  throw new InputError(`Malformed task event: ${parsed.problems}.`);
}
