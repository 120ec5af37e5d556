import { Duration } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import type { Construct } from 'constructs';
import { RETRY_POLICIES, type RetryPolicy } from '../lambdas/core/retry-policies.ts';
import { CONTROL_STATE_NAMES as C, TASK_STATE_NAMES, type WorkflowTask } from '../lambdas/core/workflow/state-names.ts';
import {
  CONTINUATION_PATH,
  DRAIN_LOOP_START,
  FAILED_IN_PATH,
  failedInPath,
  MIGRATE_LOOP_START,
  OLD_RELEASE_REQUEST,
  resultField,
  resultPath,
  type TaskEvent,
  type TaskName,
} from '../lambdas/core/workflow/task-contract.ts';

export interface UpgradeDefinitionProps {
  readonly functions: Readonly<Record<WorkflowTask | 'recordFailure', lambda.IFunction>>;
  /** Each function's timeout: the task's TimeoutSeconds (local runs enforce it too). */
  readonly timeouts: Readonly<Record<WorkflowTask | 'recordFailure', Duration>>;
  readonly drainPollInterval: Duration;
  /** Migrate calls one execution makes before it continues in a new execution (the history limit). */
  readonly maxMigrateCallsPerExecution: number;
  /** The drain source is ECS services: "Record old release" runs between "Start upgrade" and expand when its plan asks. */
  readonly recordsOldRelease: boolean;
}

/** The function that answers each task: the drain function also records the old release (it alone holds ECS). */
function functionOf(task: TaskName): WorkflowTask | 'recordFailure' {
  return task === 'recordOldRelease' ? 'drain' : task;
}

/**
 * The transient errors only a task that runs catalog steps can throw (its lock waits, its index builds). Each task's
 * bundle holds only its own code, so the other tasks do not retry them: test/shipped-bundles.test.ts checks that each
 * Task retries exactly the transient errors its bundle can throw.
 */
const STEP_ERRORS: ReadonlySet<string> = new Set(['LockTimeoutError', 'IndexBuildInProgressError']);
const RUNS_STEPS: ReadonlySet<TaskName> = new Set(['start', 'expand', 'migrate', 'contract']);

/**
 * The Retry rules of a phase Task: the engine's transient errors it can throw, each class with its own policy, grouped
 * when the policies agree (derived from `RETRY_POLICIES`, which the compiler checks against the classes' `transient`
 * flag).
 */
export function transientRetries(task: TaskName): { errors: string[]; interval: Duration; maxAttempts: number; backoffRate: number }[] {
  return groupRetries(RUNS_STEPS.has(task) ? () => true : (name) => !STEP_ERRORS.has(name));
}

/**
 * Lambda throttling an invoke (concurrency limit reached). CDK's `retryOnServiceExceptions` does not cover it; the
 * invoke never ran, so retrying is safe. Step Functions recommends retrying it with backoff ("Handle transient Lambda
 * service exceptions" in the Step Functions developer guide).
 */
export const LAMBDA_THROTTLED_RETRY = {
  errors: ['Lambda.TooManyRequestsException'],
  interval: Duration.seconds(2),
  maxAttempts: 6,
  backoffRate: 2,
} as const;

function groupRetries(retried: (name: string) => boolean) {
  const groups = new Map<string, { errors: string[]; interval: Duration; maxAttempts: number; backoffRate: number }>();
  for (const [name, policy] of Object.entries(RETRY_POLICIES) as [string, RetryPolicy][]) {
    if (!retried(name)) continue;
    const key = `${policy.intervalSeconds}/${policy.maxAttempts}/${policy.backoffRate}`;
    const group = groups.get(key);
    if (group) group.errors.push(name);
    else
      groups.set(key, {
        errors: [name],
        interval: Duration.seconds(policy.intervalSeconds),
        maxAttempts: policy.maxAttempts,
        backoffRate: policy.backoffRate,
      });
  }
  return [...groups.values()];
}

/**
 * The upgrade workflow, JSONPath mode (the local runner cannot run JSONata or variables):
 *
 *   Start upgrade -> [ECS drain source: old release to record? -> Record old release] -> Expand schema -> [stop after expand?] -> Migrate data (loop until finished)
 *   -> [stop after migrate?] -> Check old release drained <-> Wait for old tasks to drain
 *   -> Contract schema -> Release lease and summarise -> Upgrade complete
 *
 * Every task's failure is caught into `$.failedIn.<task>` and goes through "Record failure" to the Fail state,
 * whose Error is the typed error name and whose Cause names the failed state, the error, the next safe action and
 * the database version at that moment. Transitions grow with minutes of migration (one migrate call per time
 * budget), never with rows.
 */
export function buildUpgradeDefinition(scope: Construct, props: UpgradeDefinitionProps): sfn.IChainable {
  // Each task's payload names exactly its event's fields (the contract); the values are JSONPath references.
  const invoke = <T extends TaskName>(task: T, stateName: string, payload: Record<keyof TaskEvent<T>, unknown>) =>
    new tasks.LambdaInvoke(scope, stateName, {
      stateName,
      lambdaFunction: props.functions[functionOf(task)],
      payload: sfn.TaskInput.fromObject(payload),
      payloadResponseOnly: true,
      resultPath: resultPath(task),
      taskTimeout: sfn.Timeout.duration(props.timeouts[functionOf(task)]),
      retryOnServiceExceptions: true,
    }).addRetry({ ...LAMBDA_THROTTLED_RETRY, errors: [...LAMBDA_THROTTLED_RETRY.errors], jitterStrategy: sfn.JitterType.FULL });

  const recordFailure = invoke('recordFailure', C.recordFailure, {
    executionArn: sfn.JsonPath.stringAt('$$.Execution.Id'),
    failedIn: sfn.JsonPath.objectAt(FAILED_IN_PATH),
  });
  const failed = new sfn.Fail(scope, C.failed, {
    stateName: C.failed,
    errorPath: resultField('recordFailure', 'error'),
    causePath: resultField('recordFailure', 'cause'),
  });
  recordFailure.next(failed);

  const step = <T extends Exclude<TaskName, 'recordFailure'>>(task: T, payload: Record<keyof TaskEvent<T>, unknown>) => {
    const state = invoke(task, TASK_STATE_NAMES[task], payload);
    for (const retry of transientRetries(task)) {
      state.addRetry({ ...retry, jitterStrategy: sfn.JitterType.FULL });
    }
    state.addCatch(recordFailure, { errors: [sfn.Errors.ALL], resultPath: failedInPath(task) });
    return state;
  };
  const plan = sfn.JsonPath.objectAt(resultPath('start'));

  const startUpgrade = step('start', { executionArn: sfn.JsonPath.stringAt('$$.Execution.Id'), input: sfn.JsonPath.entirePayload });
  // The old release's task definitions, read while it is certainly the old one: before expand (upgrade-plan.ts).
  const recordOldReleaseFirst = (next: sfn.IChainable) =>
    new sfn.Choice(scope, C.oldReleaseToRecord, { stateName: C.oldReleaseToRecord })
      .when(
        sfn.Condition.booleanEquals(resultField('start', 'recordOldRelease'), true),
        step('recordOldRelease', { request: OLD_RELEASE_REQUEST, plan }).next(next),
      )
      .otherwise(next);
  const expandSchema = step('expand', { plan });
  const migrateData = step('migrate', { plan, callsBefore: sfn.JsonPath.numberAt(resultField('migrate', 'calls')) });
  const startMigrating = new sfn.Pass(scope, C.startMigrating, {
    stateName: C.startMigrating,
    result: sfn.Result.fromObject(MIGRATE_LOOP_START),
    resultPath: resultPath('migrate'),
  });
  // Step Functions keeps at most 25,000 events in one execution's history (Step Functions quotas). A migration that
  // would need more calls goes on in a new execution of this state machine, with the same input and the lease
  // handed over (`continueFrom`), and this one succeeds pointing at it.
  const continueInNewExecution = new sfn.CustomState(scope, C.continueInNewExecution, {
    stateJson: {
      Type: 'Task',
      Resource: 'arn:aws:states:::states:startExecution',
      Parameters: {
        'StateMachineArn.$': '$$.StateMachine.Id',
        'Input.$': `States.JsonMerge($$.Execution.Input, ${CONTINUATION_PATH}, false)`,
      },
      // The contract's continuationSummarySchema; `$.ExecutionArn` is StartExecution's response field.
      ResultSelector: { outcome: 'continued in a new execution', 'continuedIn.$': '$.ExecutionArn' },
      ResultPath: resultPath('finish'),
      Retry: [
        {
          ErrorEquals: ['StepFunctions.ThrottlingException', 'StepFunctions.SdkClientException', 'States.Timeout'],
          IntervalSeconds: 2,
          MaxAttempts: 5,
          BackoffRate: 2,
          JitterStrategy: 'FULL',
        },
      ],
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: failedInPath('continuation'), Next: C.recordFailure }],
    },
  });
  const prepareContinuation = new sfn.Pass(scope, 'Prepare continuation', {
    stateName: 'Prepare continuation',
    // The execution input fields the state machine itself sets (execution-input.ts): the lease and the old release.
    parameters: { 'continueFrom.$': '$$.Execution.Id', 'oldTaskDefinitions.$': resultField('start', 'oldTaskDefinitions') },
    resultPath: CONTINUATION_PATH,
  });
  const checkDrained = step('drain', { plan, previous: sfn.JsonPath.objectAt(resultPath('drain')) });
  const contractSchema = step('contract', { plan, drainConfirmed: sfn.JsonPath.stringAt(resultField('drain', 'drained')) });
  const finish = step('finish', { plan });
  const complete = new sfn.Succeed(scope, C.complete, { stateName: C.complete, outputPath: resultPath('finish') });

  const startDrainWait = new sfn.Pass(scope, C.startDrainWait, {
    stateName: C.startDrainWait,
    result: sfn.Result.fromObject(DRAIN_LOOP_START),
    resultPath: resultPath('drain'),
  });
  const waitForDrain = new sfn.Wait(scope, C.waitForDrain, {
    stateName: C.waitForDrain,
    time: sfn.WaitTime.duration(props.drainPollInterval),
  });

  const stopAfter = (phase: 'expand' | 'migrate', otherwise: sfn.IChainable) => {
    const name = phase === 'expand' ? C.stopAfterExpand : C.stopAfterMigrate;
    return new sfn.Choice(scope, name, { stateName: name })
      .when(sfn.Condition.stringEquals(resultField('start', 'stopAfter'), phase), finish)
      .otherwise(otherwise);
  };

  const drained = new sfn.Choice(scope, C.drained, { stateName: C.drained })
    .when(sfn.Condition.booleanEquals(resultField('drain', 'drained'), true), contractSchema.next(finish))
    .otherwise(waitForDrain.next(checkDrained));

  const migrationFinished = new sfn.Choice(scope, C.migrationFinished, { stateName: C.migrationFinished })
    .when(
      sfn.Condition.booleanEquals(resultField('migrate', 'finished'), true),
      stopAfter('migrate', startDrainWait.next(checkDrained).next(drained)),
    )
    .when(
      sfn.Condition.numberGreaterThanEquals(resultField('migrate', 'calls'), props.maxMigrateCallsPerExecution),
      prepareContinuation.next(continueInNewExecution).next(complete),
    )
    .otherwise(migrateData);

  finish.next(complete);
  startUpgrade.next(props.recordsOldRelease ? recordOldReleaseFirst(expandSchema) : expandSchema);
  expandSchema.next(stopAfter('expand', startMigrating.next(migrateData).next(migrationFinished)));
  return startUpgrade;
}
