import { Duration } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import type { Construct } from 'constructs';
import { CONTROL_STATE_NAMES as C, STATE_NAMES, type WorkflowTask } from '../lambdas/core/workflow/state-names.ts';

export interface UpgradeDefinitionProps {
  readonly functions: Readonly<Record<WorkflowTask | 'recordFailure', lambda.IFunction>>;
  /** Each function's timeout: the task's TimeoutSeconds (local runs enforce it too). */
  readonly timeouts: Readonly<Record<WorkflowTask | 'recordFailure', Duration>>;
  readonly drainPollInterval: Duration;
}

/**
 * Errors worth trying again as they are: a paused Aurora waking up, throttling, a lock held by the application or on
 * the lease row.
 */
export const TRANSIENT_RETRIES: readonly { errors: string[]; interval: Duration; maxAttempts: number; backoffRate: number }[] = [
  { errors: ['DatabaseResumingError', 'DatabaseUnavailableError'], interval: Duration.seconds(5), maxAttempts: 6, backoffRate: 2 },
  { errors: ['LockTimeoutError'], interval: Duration.seconds(10), maxAttempts: 5, backoffRate: 2 },
  // The lease row locked by a transaction that will end: a step's (seconds), or a frozen one that the server ends after
  // idleInTransactionTimeoutMs (15 s by default, 180 s at most; these retries span about three minutes).
  { errors: ['LeaseBusyError'], interval: Duration.seconds(3), maxAttempts: 6, backoffRate: 2 },
  { errors: ['IndexBuildInProgressError'], interval: Duration.seconds(60), maxAttempts: 30, backoffRate: 1.2 },
];

/**
 * The upgrade workflow, JSONPath mode (the local runner cannot run JSONata or variables):
 *
 *   Plan upgrade -> Expand schema -> [stop after expand?] -> Migrate data (loop until finished)
 *   -> [stop after migrate?] -> Check old release drained <-> Wait for old tasks to drain
 *   -> Contract schema -> Release lease and summarise -> Upgrade complete
 *
 * Every task's failure is caught into `$.failedIn.<task>` and goes through "Record failure" to the Fail state,
 * whose Error is the typed error name and whose Cause names the failed state, the error, the next safe action and
 * the database version at that moment. Transitions grow with minutes of migration (one migrate call per time
 * budget), never with rows.
 */
export function buildUpgradeDefinition(scope: Construct, props: UpgradeDefinitionProps): sfn.IChainable {
  const invoke = (task: WorkflowTask | 'recordFailure', stateName: string, payload: Record<string, unknown>, resultPath: string) =>
    new tasks.LambdaInvoke(scope, stateName, {
      stateName,
      lambdaFunction: props.functions[task],
      payload: sfn.TaskInput.fromObject(payload),
      payloadResponseOnly: true,
      resultPath,
      taskTimeout: sfn.Timeout.duration(props.timeouts[task]),
      retryOnServiceExceptions: true,
    });

  const recordFailure = invoke(
    'recordFailure',
    C.recordFailure,
    { executionId: sfn.JsonPath.stringAt('$$.Execution.Id'), failedIn: sfn.JsonPath.objectAt('$.failedIn') },
    '$.failure',
  );
  const failed = new sfn.Fail(scope, C.failed, {
    stateName: C.failed,
    errorPath: '$.failure.error',
    causePath: '$.failure.cause',
  });
  recordFailure.next(failed);

  const step = (task: WorkflowTask, payload: Record<string, unknown>, resultPath: string) => {
    const state = invoke(task, STATE_NAMES[task], payload, resultPath);
    for (const retry of TRANSIENT_RETRIES) {
      state.addRetry({ ...retry, jitterStrategy: sfn.JitterType.FULL });
    }
    state.addCatch(recordFailure, { errors: [sfn.Errors.ALL], resultPath: `$.failedIn.${task}` });
    return state;
  };
  const plan = sfn.JsonPath.objectAt('$.plan');

  const planUpgrade = step(
    'plan',
    { executionId: sfn.JsonPath.stringAt('$$.Execution.Id'), input: sfn.JsonPath.entirePayload },
    '$.plan',
  );
  const expandSchema = step('expand', { plan }, '$.expand');
  const migrateData = step('migrate', { plan }, '$.migrate');
  const checkDrained = step('drain', { plan, previous: sfn.JsonPath.objectAt('$.drain') }, '$.drain');
  const contractSchema = step(
    'contract',
    { plan, drainConfirmed: sfn.JsonPath.stringAt('$.drain.drained') },
    '$.contract',
  );
  const finish = step('finish', { plan }, '$.summary');
  const complete = new sfn.Succeed(scope, C.complete, { stateName: C.complete, outputPath: '$.summary' });

  const startDrainWait = new sfn.Pass(scope, C.startDrainWait, {
    stateName: C.startDrainWait,
    result: sfn.Result.fromObject({ polls: 0 }),
    resultPath: '$.drain',
  });
  const waitForDrain = new sfn.Wait(scope, C.waitForDrain, {
    stateName: C.waitForDrain,
    time: sfn.WaitTime.duration(props.drainPollInterval),
  });

  const stopAfter = (phase: 'expand' | 'migrate', otherwise: sfn.IChainable) => {
    const name = phase === 'expand' ? C.stopAfterExpand : C.stopAfterMigrate;
    return new sfn.Choice(scope, name, { stateName: name })
      .when(sfn.Condition.stringEquals('$.plan.stopAfter', phase), finish)
      .otherwise(otherwise);
  };

  const drained = new sfn.Choice(scope, C.drained, { stateName: C.drained })
    .when(sfn.Condition.booleanEquals('$.drain.drained', true), contractSchema.next(finish))
    .otherwise(waitForDrain.next(checkDrained));

  const migrationFinished = new sfn.Choice(scope, C.migrationFinished, { stateName: C.migrationFinished })
    .when(
      sfn.Condition.booleanEquals('$.migrate.finished', true),
      stopAfter('migrate', startDrainWait.next(checkDrained).next(drained)),
    )
    .otherwise(migrateData);

  finish.next(complete);
  return planUpgrade.next(expandSchema).next(stopAfter('expand', migrateData.next(migrationFinished)));
}
