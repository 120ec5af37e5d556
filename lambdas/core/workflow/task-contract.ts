import * as z from 'zod/mini';
import '../validation.ts';
import { drainReportSchema } from '../drain/drain-report.ts';
import { resolveSettings, settingsOverridesSchema } from '../settings.ts';

/**
 * The contract between the Lambda tasks, the state machine and the CLI: each task's event and result, where the
 * state machine keeps each result in the execution's data, and the structured failure record. Handlers parse their
 * event and return results of these types; lib/upgrade-state-machine.ts takes its paths from here; the CLI parses the
 * execution history with these schemas; tests build their fixtures from them. A field renamed here breaks all four.
 */

const nonEmpty = z.string().check(z.minLength(1));
const count = z.number().check(z.int(), z.minimum(0));
const stepIds = z.array(z.string());

/**
 * The tasks of the workflow, by the short name the code uses (TASK_STATE_NAMES gives the console's names).
 * `recordOldRelease` is a request the drain task's function answers (it alone holds the ECS client), not a function.
 */
export const TASKS = ['start', 'recordOldRelease', 'expand', 'migrate', 'drain', 'contract', 'finish', 'recordFailure'] as const;
export type TaskName = (typeof TASKS)[number];
/** The tasks whose failure a Catch sends to "Record failure". */
export type PhaseTask = Exclude<TaskName, 'recordFailure'>;

/**
 * What the first state decides and every later state reads (`$.plan`): small, and free of row data, because it is
 * written to the execution history.
 */
export const upgradePlanSchema = z.object({
  /** The execution ARN (or local run id): owner of the lease and the run id in the history table. */
  runId: nonEmpty,
  target: nonEmpty,
  stopAfter: z.nullable(z.enum(['expand', 'migrate'])),
  /** The settings resolved at plan time; parsing fills in defaults for settings added since (an older execution). */
  settings: z.pipe(z.object(settingsOverridesSchema.shape), z.transform((s) => resolveSettings(s))),
  versionBefore: z.string(),
  pending: z.object({ expand: stepIds, migrate: stepIds, contract: stepIds }),
  /** Phase-lint overrides in the steps to run, with their reasons, so they show in the execution history. */
  lintOverrides: z.array(z.object({ stepId: z.string(), reason: z.string() })),
  newTaskDefinitions: z.record(z.string(), z.string()),
  /** The input's session pattern for this release (`drain.sessions`), replacing the drain source's. */
  sessionPattern: z.optional(z.string()),
  /**
   * ECS drain source: per service (`cluster/service`), the task definitions the old release ran before expand; empty
   * when nothing was recorded. The drain gate fails when a service runs one of them again (a rollback). The
   * continuation of a long migration passes it on.
   */
  oldTaskDefinitions: z.record(z.string(), z.array(z.string())),
  /**
   * ECS drain source: the old release is still to be recorded, by "Record old release" before expand (it writes
   * `oldTaskDefinitions`). False when there is nothing to record: no drain in this execution, expand already ran, a
   * continuation carries the record, or the drain source is database sessions. Absent in plans of older versions.
   */
  recordOldRelease: z._default(z.boolean(), false),
  /** The execution input's `restartSteps`, checked: partly-run migrate steps whose file changed, to run again. */
  restartSteps: z.array(z.string()),
  startedAt: z.string(),
  /** The execution this one continues (it took the lease over from it), or null. */
  continuedFrom: z.nullable(z.string()),
});
export type UpgradePlan = z.infer<typeof upgradePlanSchema>;

const withPlan = z.object({ plan: upgradePlanSchema });

/** Expand's and contract's result: the steps applied (ids), their total time, the versions around them. */
export const schemaPhaseResultSchema = z.object({
  phase: z.enum(['expand', 'contract']),
  stepsRun: stepIds,
  durationMs: z.number(),
  versionBefore: z.string(),
  versionAfter: z.string(),
});
export type SchemaPhaseTaskResult = z.infer<typeof schemaPhaseResultSchema>;

/** One migrate step's progress after a call. Cursors are key values (row data): never in the execution history. */
export const migrateStepResultSchema = z.object({
  stepId: z.string(),
  rowsDone: count,
  /** Rows still to migrate by the pending query or a table estimate; null when unknown. */
  remaining: z.nullable(z.number()),
  batches: count,
  finished: z.boolean(),
});

export const migrateResultSchema = z.object({
  /** Every migrate step up to the target is finished: the state machine stops looping. */
  finished: z.boolean(),
  /** This execution's migrate calls so far: the state machine continues in a new execution after its limit. */
  calls: count,
  rowsThisCall: count,
  batchesThisCall: count,
  durationMs: z.number(),
  stepsFinished: stepIds,
  steps: z.array(migrateStepResultSchema),
  /** Rows migrated over the whole run, steps finished in earlier calls included. */
  rowsDone: count,
  rowsRemaining: z.nullable(z.number()),
});
export type MigrateTaskResult = z.infer<typeof migrateResultSchema>;
/** What "Start migrating" puts at `$.migrate` before the first call. */
export const MIGRATE_LOOP_START = { calls: 0, finished: false } as const satisfies Partial<MigrateTaskResult>;

/** "Record old release"'s result, which it writes into the plan (`$.plan.oldTaskDefinitions`). */
export const oldReleaseResultSchema = z.record(z.string(), z.array(z.string()));
export type OldReleaseTaskResult = z.infer<typeof oldReleaseResultSchema>;

/** The drain gate's state between polls (`$.drain`). */
export const drainResultSchema = z.object({
  drained: z.boolean(),
  startedAt: z.string(),
  polls: count,
  summary: z.string(),
  /** ECS: the new task definition per service, pinned at the first poll so a later rollback cannot pass as drained. */
  newTaskDefinitions: z.record(z.string(), z.string()),
  /** What the last poll found (drain/drain-report.ts). */
  report: drainReportSchema,
});
export type DrainTaskResult = z.infer<typeof drainResultSchema>;
/** What "Start waiting for old release to drain" puts at `$.drain` before the first poll. */
export const DRAIN_LOOP_START = { polls: 0 } as const satisfies Partial<DrainTaskResult>;

export const runSummarySchema = z.object({
  runId: z.string(),
  target: z.string(),
  outcome: z.enum(['completed', 'stopped after expand', 'stopped after migrate']),
  versionBefore: z.string(),
  versionAfter: z.string(),
  /** One entry per step this run worked on; a migrate step's rows and time are summed over its batch runs. */
  steps: z.array(z.object({ stepId: z.string(), phase: z.string(), durationMs: z.number(), rowsAffected: z.nullable(z.number()) })),
  rowsMigrated: count,
  durationMs: z.number(),
});
export type RunSummary = z.infer<typeof runSummarySchema>;

/** What "Continue in a new execution" puts at `$.summary`: this execution ends, the migration goes on there. */
export const continuationSummarySchema = z.object({
  outcome: z.literal('continued in a new execution'),
  continuedIn: nonEmpty,
});
/** A succeeded execution's output (`$.summary`). */
export const executionOutputSchema = z.union([runSummarySchema, continuationSummarySchema]);
export type ExecutionOutput = z.infer<typeof executionOutputSchema>;

/**
 * The structured record of a task's failure, as the task wrapper throws it: the Lambda error document's
 * `errorMessage` is this record as JSON (its `errorType` stays the class name, which Retry and Catch match on).
 */
export const taskFailureSchema = z.object({
  /** The typed error's class name (StepFailedError, LeaseHeldError, ...). */
  errorClass: nonEmpty,
  message: z.string(),
  transient: z.boolean(),
  nextAction: z.nullable(z.string()),
  /** The task that failed. */
  phase: z.enum(TASKS),
  stepId: z.nullable(z.string()),
  file: z.nullable(z.string()),
  /** Line in `file` where the failed statement starts. */
  line: z.nullable(z.number()),
  sqlState: z.nullable(z.string()),
  /** For a failed SQL step: true when it ran in one transaction (rolled back), false when statement by statement. */
  transactional: z.nullable(z.boolean()),
});
export type TaskFailure = z.infer<typeof taskFailureSchema>;

/** The failure path's result (`$.failure`): what the Fail state shows, and the record the CLI reads. */
export const failureReportSchema = z.object({
  /** The Fail state's Error: the typed error name, or Step Functions' (States.Timeout, Lambda.Unknown, ...). */
  error: z.string(),
  /** The Fail state's Cause: a sentence for a person in the console (which state failed, why, the version, next). */
  cause: z.string(),
  failedState: z.string(),
  /** The database's composite version when the failure was recorded. */
  version: z.string(),
  leaseReleased: z.boolean(),
  /** The task's failure record; null when the error arose outside the handler (a timeout, throttling, a crash). */
  record: z.nullable(taskFailureSchema),
});
export type FailureReport = z.infer<typeof failureReportSchema>;

/** What a Catch stores at `$.failedIn.<task>`: the error name and the Cause (the Lambda error document in AWS). */
export const caughtErrorSchema = z.object({ Error: z.string(), Cause: z.optional(z.string()) });
export type CaughtError = z.infer<typeof caughtErrorSchema>;
/** Where a Catch records an error: a phase task, or the start of the continuing execution. */
export const FAILURE_SOURCES = ['start', 'recordOldRelease', 'expand', 'migrate', 'drain', 'contract', 'finish', 'continuation'] as const;
export type FailureSource = (typeof FAILURE_SOURCES)[number];

/** The `request` of "Record old release"'s event. */
export const OLD_RELEASE_REQUEST = 'record-old-release';

/** Whether an event of the drain task's function asks it to record the old release rather than to poll the gate. */
export function isOldReleaseRequest(event: unknown): boolean {
  return typeof event === 'object' && event !== null && 'request' in event && event.request === OLD_RELEASE_REQUEST;
}

/** Each task's event, as the state machine builds it. */
export const TASK_EVENTS = {
  start: z.object({ executionArn: nonEmpty, input: z.unknown() }),
  /** Sent to the drain task's function; `request` tells it from a drain poll (isOldReleaseRequest). */
  recordOldRelease: z.object({ request: z.literal(OLD_RELEASE_REQUEST), plan: upgradePlanSchema }),
  expand: withPlan,
  migrate: z.object({ plan: upgradePlanSchema, callsBefore: count }),
  drain: z.object({
    plan: upgradePlanSchema,
    /** The previous poll's state; `DRAIN_LOOP_START` (no `startedAt`) before the first poll. */
    previous: z.nullish(
      z.object({
        startedAt: z.optional(z.string()),
        polls: z.optional(count),
        newTaskDefinitions: z.optional(z.record(z.string(), z.string())),
      }),
    ),
  }),
  contract: z.object({ plan: upgradePlanSchema, drainConfirmed: z.boolean() }),
  finish: withPlan,
  recordFailure: z.object({ executionArn: nonEmpty, failedIn: z.partialRecord(z.enum(FAILURE_SOURCES), caughtErrorSchema) }),
} as const;
export type TaskEvent<T extends TaskName> = z.infer<(typeof TASK_EVENTS)[T]>;

const RESULT_SCHEMAS = {
  start: upgradePlanSchema,
  recordOldRelease: oldReleaseResultSchema,
  expand: schemaPhaseResultSchema,
  migrate: migrateResultSchema,
  drain: drainResultSchema,
  contract: schemaPhaseResultSchema,
  finish: runSummarySchema,
  recordFailure: failureReportSchema,
} as const;
export type TaskResult<T extends TaskName> = z.infer<(typeof RESULT_SCHEMAS)[T]>;
/** Each task's result. */
export const TASK_RESULTS: { readonly [T in TaskName]: z.ZodMiniType<TaskResult<T>> } = RESULT_SCHEMAS;

/** The key of each task's result in the execution's data (its ResultPath is `$.<key>`). */
export const RESULT_KEYS = {
  // The start task's result is the upgrade's plan, which every later task reads.
  start: 'plan',
  // Into the plan, which every later task receives (the drain gate, the continuation).
  recordOldRelease: 'plan.oldTaskDefinitions',
  expand: 'expand',
  migrate: 'migrate',
  drain: 'drain',
  contract: 'contract',
  finish: 'summary',
  recordFailure: 'failure',
} as const satisfies Record<TaskName, string>;

/** `$.<key>` where the state machine puts a task's result. */
export function resultPath(task: TaskName): string {
  return `$.${RESULT_KEYS[task]}`;
}

/** The JSONPath of one field of a task's result; the compiler checks the field against the result's type. */
export function resultField<T extends TaskName>(task: T, field: keyof TaskResult<T> & string): string {
  return `${resultPath(task)}.${field}`;
}

/** Where the Catches store errors: "Record failure" reads them all (its `failedIn`). */
export const FAILED_IN_PATH = '$.failedIn';

/** Where a Catch stores the error of `source`. */
export function failedInPath(source: FailureSource): string {
  return `${FAILED_IN_PATH}.${source}`;
}

/** What "Prepare continuation" merges into the execution input of the next execution (`$.continuation`). */
export const CONTINUATION_PATH = '$.continuation';

export type ContractParse<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problems: string };

/** Parses a value with a contract schema; `problems` names every field that does not match. */
export function parseWith<T>(schema: z.ZodMiniType<T>, value: unknown): ContractParse<T> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return { ok: true, value: parsed.data };
  return { ok: false, problems: parsed.error.issues.map((i) => `"${i.path.join('.') || '(value)'}": ${i.message}`).join('; ') };
}

/** Parses one task's result (a Lambda task's output in the execution history). */
export function parseTaskResult<T extends TaskName>(task: T, value: unknown): ContractParse<TaskResult<T>> {
  return parseWith(TASK_RESULTS[task], value);
}

/**
 * The failure record in a Catch's Cause: Lambda's error document `{"errorType","errorMessage","trace"}` whose
 * errorMessage is the record (in AWS), or the record itself (the local runner passes the message alone). Errors
 * raised outside the handler (Lambda timeouts, throttling, a crashed runtime, States.*) carry none: null.
 */
export function taskFailureOf(cause: string | undefined): TaskFailure | null {
  const message = errorMessageOf(cause) ?? cause;
  if (message === undefined) return null;
  const parsed = parseWith(taskFailureSchema, parseJson(message));
  return parsed.ok ? parsed.value : null;
}

/** Lambda's error document's `errorMessage`, or undefined for a Cause in another shape. */
export function errorMessageOf(cause: string | undefined): string | undefined {
  const document = cause === undefined ? undefined : parseJson(cause);
  if (typeof document === 'object' && document !== null && 'errorMessage' in document && typeof document.errorMessage === 'string') {
    return document.errorMessage;
  }
  return undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
