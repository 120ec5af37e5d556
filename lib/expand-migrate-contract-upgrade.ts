import { Arn, ArnFormat, CfnElement, CfnOutput, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as rds from 'aws-cdk-lib/aws-rds';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import {
  MIGRATE_FUNCTION_TIMEOUT_MS,
  resolveSettings,
  settingsOverridesSchema,
  settingsProblems,
  type SettingsOverrides,
} from '../lambdas/core/settings.ts';
import { lambdaEnvironmentVariables } from '../lambdas/handlers/commons/environment.ts';
import type { WorkflowTask } from '../lambdas/core/workflow/state-names.ts';
import { CATALOG_FILE_NAME, compileCatalogForSynth } from './catalog-at-synth.ts';
import { ConstructPropsError } from './construct-props-error.ts';
import type { DrainSource, ResolvedEcsService } from './drain-source.ts';
import { lambdaBundles, type HandlerEntry } from './lambda-bundles.ts';
import { UpgradeFunction } from './upgrade-function.ts';
import { buildUpgradeDefinition } from './upgrade-state-machine.ts';

/** Tuning of the migrate batches; each unset value keeps the engine's default (docs/operators.md). */
export interface BatchSettings {
  /** Rows of a migrate call's first batch; later ones size themselves toward `targetBatchDuration`. A migrate file's `emc:batch-size` fixes it. @default 1000 */
  readonly batchSize?: number;
  /** Target duration of one migrate batch (the engine's `targetBatchMs`); 0 keeps every batch at `batchSize`. @default Duration.millis(200) */
  readonly targetBatchDuration?: Duration;
  /** Pause between batches, leaving room for the application's writes. @default Duration.millis(20) */
  readonly batchPause?: Duration;
  /** `lock_timeout` of every DDL step and batch. @default Duration.seconds(2) */
  readonly lockTimeout?: Duration;
  /** `statement_timeout` of one batch; keep it under the Data API's 45 s call limit. @default Duration.seconds(30) */
  readonly batchStatementTimeout?: Duration;
  /** How long one migrate Lambda call runs batches before the state machine loops. @default Duration.minutes(1) */
  readonly migrateBudget?: Duration;
  /** Lifetime of the upgrade lease between renewals. @default Duration.minutes(15) */
  readonly leaseTtl?: Duration;
  /** `statement_timeout` of the engine's own statements outside batches; under the Data API's 45 s. @default Duration.seconds(30) */
  readonly engineStatementTimeout?: Duration;
  /** `idle_in_transaction_session_timeout` of the engine's transactions: a frozen run's locks are freed. @default Duration.seconds(15) */
  readonly idleInTransactionTimeout?: Duration;
}

export interface ExpandMigrateContractUpgradeProps {
  /** The Aurora PostgreSQL cluster, with the Data API enabled. Give this or `clusterArn`. @default none */
  readonly cluster?: rds.IDatabaseCluster;
  /** The cluster's ARN, for a cluster defined elsewhere. Give this or `cluster`. @default none */
  readonly clusterArn?: string;
  /** The Secrets Manager secret the Data API signs in with. */
  readonly secret: secretsmanager.ISecret;
  /**
   * The customer-managed KMS key the secret is encrypted with, for a secret that does not carry its key (one
   * imported by ARN). "Data API transparently calls Secrets Manager, which allows (or denies) the user's request for
   * the secret" (Aurora user guide, Authorizing access to the Data API): so every function that calls the Data API
   * gets `kms:Decrypt` on this key, only through Secrets Manager (`kms:ViaService`). The key policy must let the
   * account's IAM policies grant its use (the default key policy does).
   * @default the secret's own `encryptionKey` if it has one, else none: a secret under the AWS managed key
   * `aws/secretsmanager` needs no grant
   */
  readonly secretEncryptionKey?: kms.IKey;
  /** The database to upgrade. */
  readonly databaseName: string;
  /** The migrations directory (releases.json and one folder per release); validated at synth, shipped with the code. */
  readonly migrationsDirectory: string;
  /** Where the drain gate looks for the old release: `DrainSource.ecsServices(...)` or `DrainSource.databaseSessions(...)`. */
  readonly drainSource: DrainSource;
  /** Batch settings; an execution's input may override them. @default the engine's defaults */
  readonly batchSettings?: BatchSettings;
  /** Time between two drain checks. @default Duration.seconds(30) */
  readonly drainPollInterval?: Duration;
  /** How long to wait for the old release to drain before failing. @default Duration.hours(2) */
  readonly drainTimeout?: Duration;
  /**
   * Notified of every failed, timed-out or aborted execution, through an EventBridge rule. The topic's resource
   * policy must let `events.amazonaws.com` publish: CDK adds that to a topic defined in the same app, but not to an
   * imported one. @default no notification
   */
  readonly failureTopic?: sns.ITopic;
  /** Retention of the state machine's and the functions' logs. @default logs.RetentionDays.ONE_YEAR */
  readonly logRetention?: logs.RetentionDays;
  /** Name of the state machine. @default generated by CloudFormation */
  readonly stateMachineName?: string;
  /**
   * Migrate calls (each up to `batchSettings.migrateBudget` long) one execution makes before the migration goes on in
   * a new execution, which takes the lease over: Step Functions keeps at most 25,000 events in an execution's history.
   * @default DEFAULT_MAX_MIGRATE_CALLS_PER_EXECUTION (1500: about 25 hours at the default 1-minute budget)
   */
  readonly maxMigrateCallsPerExecution?: number;
}

export const DEFAULT_DRAIN_POLL_INTERVAL = Duration.seconds(30);
export const DEFAULT_DRAIN_TIMEOUT = Duration.hours(2);
export const DEFAULT_LOG_RETENTION = logs.RetentionDays.ONE_YEAR;

/*
 * The history budget of one execution, under Step Functions' quota of 25,000 events. A migrate loop pass writes 7
 * events (a Lambda Task's entered, scheduled, started, succeeded and exited, and the Choice's entered and exited), a
 * retried attempt 3 more; a drain poll 9 (Task, Choice and Wait). 1,500 migrate calls (10,500 events) plus 1,000 drain
 * polls (9,000) leave over 5,000 events for the other states and for retries.
 */
export const DEFAULT_MAX_MIGRATE_CALLS_PER_EXECUTION = 1500;
/** Drain polls one execution may make: drainTimeout / drainPollInterval may not exceed it. */
export const MAX_DRAIN_POLLS = 1000;

/** Each task function's timeout. Migrate's must exceed its budget plus one batch; the construct checks it. */
const TIMEOUTS: Record<WorkflowTask | 'recordFailure', Duration> = {
  start: Duration.minutes(1),
  expand: Duration.minutes(15),
  migrate: Duration.millis(MIGRATE_FUNCTION_TIMEOUT_MS),
  drain: Duration.minutes(1),
  contract: Duration.minutes(15),
  finish: Duration.minutes(1),
  recordFailure: Duration.minutes(1),
};

const ENTRIES: Record<WorkflowTask | 'recordFailure', { entry: HandlerEntry; description: string }> = {
  start: { entry: 'start', description: 'emc-upgrade: validate input and catalog, take the lease, plan the upgrade' },
  expand: { entry: 'expand', description: 'emc-upgrade: apply pending expand steps' },
  migrate: { entry: 'migrate', description: 'emc-upgrade: run migrate batches for one time budget' },
  drain: { entry: 'check-drain', description: 'emc-upgrade: record the old release before expand; check that it drained' },
  contract: { entry: 'contract', description: 'emc-upgrade: apply pending contract steps' },
  finish: { entry: 'finish', description: 'emc-upgrade: release the lease and summarise' },
  recordFailure: { entry: 'record-failure', description: 'emc-upgrade: release the lease and describe a failure' },
};

/**
 * A Step Functions state machine that upgrades an Aurora PostgreSQL database with the Expand-Migrate-Contract
 * cycle, so that two releases of the application can run side by side during a rolling deployment.
 */
export class ExpandMigrateContractUpgrade extends Construct {
  readonly stateMachine: sfn.StateMachine;
  readonly functions: Readonly<Record<WorkflowTask | 'recordFailure', UpgradeFunction>>;
  /** The releases the migrations ship, in order. */
  readonly releases: readonly string[];

  constructor(scope: Construct, id: string, props: ExpandMigrateContractUpgradeProps) {
    super(scope, id);
    const clusterArn = resolveClusterArn(this, props);
    if (!/^[A-Za-z_][A-Za-z0-9_$]{0,62}$/.test(props.databaseName)) {
      throw new ConstructPropsError('databaseName', `databaseName must be a PostgreSQL database name, got "${props.databaseName}".`);
    }
    const settings = toSettingsOverrides(props.batchSettings ?? {});
    const drainPollInterval = props.drainPollInterval ?? DEFAULT_DRAIN_POLL_INTERVAL;
    const drainTimeout = props.drainTimeout ?? DEFAULT_DRAIN_TIMEOUT;
    if (drainPollInterval.toSeconds() < 1 || drainPollInterval.toSeconds() > 3600) {
      throw new ConstructPropsError('drainPollInterval', `drainPollInterval must be from 1 second to 1 hour, got ${drainPollInterval.toHumanString()}.`);
    }
    if (drainTimeout.toSeconds() < drainPollInterval.toSeconds()) {
      throw new ConstructPropsError('drainTimeout', `drainTimeout (${drainTimeout.toHumanString()}) must be at least drainPollInterval (${drainPollInterval.toHumanString()}).`);
    }
    if (drainTimeout.toSeconds() / drainPollInterval.toSeconds() > MAX_DRAIN_POLLS) {
      throw new ConstructPropsError(
        'drainTimeout',
        `drainTimeout (${drainTimeout.toHumanString()}) / drainPollInterval (${drainPollInterval.toHumanString()}) makes more than ${MAX_DRAIN_POLLS} drain polls, which would outgrow one execution's history (25,000 events): poll less often or wait less long.`,
      );
    }
    const maxMigrateCalls = props.maxMigrateCallsPerExecution ?? DEFAULT_MAX_MIGRATE_CALLS_PER_EXECUTION;
    // The default is also the most the history budget allows.
    if (!Number.isInteger(maxMigrateCalls) || maxMigrateCalls < 1 || maxMigrateCalls > DEFAULT_MAX_MIGRATE_CALLS_PER_EXECUTION) {
      throw new ConstructPropsError(
        'maxMigrateCallsPerExecution',
        `maxMigrateCallsPerExecution must be a whole number from 1 to ${DEFAULT_MAX_MIGRATE_CALLS_PER_EXECUTION} (one execution's history holds at most 25,000 events), got ${maxMigrateCalls}.`,
      );
    }
    const { catalog, file: catalogFile } = compileCatalogForSynth(props.migrationsDirectory);
    this.releases = catalog.releases;
    const drain = props.drainSource.bind(this);
    const logRetention = props.logRetention ?? DEFAULT_LOG_RETENTION;

    const logKey = new kms.Key(this, 'LogKey', {
      description: 'Encrypts the emc-upgrade state machine and function logs',
      enableKeyRotation: true,
    });
    logKey.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal(`logs.${Stack.of(this).region}.amazonaws.com`)],
        actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
        resources: ['*'],
        conditions: {
          ArnLike: {
            'kms:EncryptionContext:aws:logs:arn': Stack.of(this).formatArn({
              service: 'logs',
              resource: 'log-group',
              resourceName: '*',
              arnFormat: ArnFormat.COLON_RESOURCE_NAME,
            }),
          },
        },
      }),
    );

    const environment = lambdaEnvironmentVariables({
      clusterArn,
      secretArn: props.secret.secretArn,
      databaseName: props.databaseName,
      catalogFile: CATALOG_FILE_NAME,
      settings,
      drainSource: drain.config,
      drainTimeoutSeconds: drainTimeout.toSeconds(),
    });
    const bundles = lambdaBundles();
    const functions = Object.fromEntries(
      (Object.keys(ENTRIES) as (WorkflowTask | 'recordFailure')[]).map((task) => [
        task,
        new UpgradeFunction(this, `${task[0]!.toUpperCase()}${task.slice(1)}`, {
          ...ENTRIES[task],
          timeout: TIMEOUTS[task],
          environment,
          catalogFile,
          bundles,
          logRetention,
          logKey,
        }),
      ]),
    ) as Record<WorkflowTask | 'recordFailure', UpgradeFunction>;
    this.functions = functions;

    // Least privilege: the Data API on this cluster and the one secret (and its key), for every task; ECS reads for
    // the drain task.
    const secretKey = props.secretEncryptionKey ?? props.secret.encryptionKey;
    for (const fn of Object.values(functions)) {
      fn.role.addToPolicy(
        new iam.PolicyStatement({
          actions: ['rds-data:ExecuteStatement', 'rds-data:BeginTransaction', 'rds-data:CommitTransaction', 'rds-data:RollbackTransaction'],
          resources: [clusterArn],
        }),
      );
      props.secret.grantRead(fn.role);
      // Secrets Manager decrypts the secret on the caller's behalf, hence the kms:ViaService condition. Written as the
      // role's own statement: `grantRead`'s grant to a ViaServicePrincipal adds nothing for an imported key.
      if (secretKey) {
        fn.role.addToPolicy(
          new iam.PolicyStatement({
            actions: ['kms:Decrypt'],
            resources: [secretKey.keyArn],
            conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${props.secret.env.region}.amazonaws.com` } },
          }),
        );
      }
    }
    // Only the drain function talks to ECS; it also records the old release before expand.
    grantEcsDrainReads(functions.drain.role, drain.ecsServices);

    const logGroup = new logs.LogGroup(this, 'StateMachineLogs', {
      retention: logRetention,
      encryptionKey: logKey,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineName: props.stateMachineName,
      stateMachineType: sfn.StateMachineType.STANDARD,
      comment: `Expand-Migrate-Contract upgrade of ${props.databaseName} (releases ${catalog.releases.join(', ')})`,
      definitionBody: sfn.DefinitionBody.fromChainable(
        buildUpgradeDefinition(this, {
          functions: Object.fromEntries(Object.entries(functions).map(([k, v]) => [k, v.function])) as Record<
            WorkflowTask | 'recordFailure',
            UpgradeFunction['function']
          >,
          timeouts: TIMEOUTS,
          drainPollInterval,
          maxMigrateCallsPerExecution: maxMigrateCalls,
          recordsOldRelease: drain.config.kind === 'ecs',
        }),
      ),
      logs: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
      tracingEnabled: true,
    });

    // "Continue in a new execution" starts this state machine. A policy of its own, attached after the state machine
    // exists: the state machine depends on its role's default policy, which therefore cannot name the machine's ARN.
    new iam.Policy(this, 'ContinuationPolicy', {
      roles: [this.stateMachine.role],
      statements: [new iam.PolicyStatement({ actions: ['states:StartExecution'], resources: [this.stateMachine.stateMachineArn] })],
    });

    if (props.failureTopic) {
      new events.Rule(this, 'FailureRule', {
        description: 'emc-upgrade execution failed, timed out or was aborted',
        eventPattern: {
          source: ['aws.states'],
          detailType: ['Step Functions Execution Status Change'],
          detail: { status: ['FAILED', 'TIMED_OUT', 'ABORTED'], stateMachineArn: [this.stateMachine.stateMachineArn] },
        },
        targets: [
          new targets.SnsTopic(props.failureTopic, {
            // Every `<name>` of an input template must be a variable of its InputPathsMap (EventBridge input
            // transformation): the text holds none of its own, only EventFields, and names the execution by its ARN.
            message: events.RuleTargetInput.fromText(
              `emc-upgrade execution ${events.EventField.fromPath('$.detail.name')} ended ${events.EventField.fromPath('$.detail.status')}. For the failed step, the error and the next safe action, run: emc why ${events.EventField.fromPath('$.detail.executionArn')}`,
            ),
          }),
        ],
      });
    }

    acknowledgeFindings(this, this.stateMachine, functions);

    new CfnOutput(this, 'StateMachineArn', {
      value: this.stateMachine.stateMachineArn,
      description: 'emc start --state-machine-arn <this> (emc also finds it by the stack name: --stack)',
    });
  }
}

function resolveClusterArn(scope: Construct, props: ExpandMigrateContractUpgradeProps): string {
  if ((props.cluster === undefined) === (props.clusterArn === undefined)) {
    throw new ConstructPropsError('cluster', 'Give exactly one of cluster or clusterArn (the Aurora PostgreSQL cluster to upgrade).');
  }
  if (props.cluster) {
    return Stack.of(scope).formatArn({
      service: 'rds',
      resource: 'cluster',
      resourceName: props.cluster.clusterIdentifier,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
  }
  const arn = props.clusterArn!;
  if (!/^arn:[^:]+:rds:[^:]+:\d{12}:cluster:[A-Za-z][A-Za-z0-9-]*$/.test(arn)) {
    throw new ConstructPropsError('clusterArn', `clusterArn must be an Aurora cluster ARN (arn:aws:rds:<region>:<account>:cluster:<name>), got "${arn}".`);
  }
  void Arn.split(arn, ArnFormat.COLON_RESOURCE_NAME);
  return arn;
}

/** The engine's setting each `BatchSettings` prop sets. */
const BATCH_SETTING_PROPS: Record<keyof SettingsOverrides, keyof BatchSettings> = {
  batchSize: 'batchSize',
  targetBatchMs: 'targetBatchDuration',
  batchPauseMs: 'batchPause',
  lockTimeoutMs: 'lockTimeout',
  batchStatementTimeoutMs: 'batchStatementTimeout',
  migrateBudgetMs: 'migrateBudget',
  leaseTtlSeconds: 'leaseTtl',
  engineStatementTimeoutMs: 'engineStatementTimeout',
  idleInTransactionTimeoutMs: 'idleInTransactionTimeout',
};

function toSettingsOverrides(batch: BatchSettings): SettingsOverrides {
  const overrides: SettingsOverrides = {
    batchSize: batch.batchSize,
    targetBatchMs: batch.targetBatchDuration?.toMilliseconds(),
    batchPauseMs: batch.batchPause?.toMilliseconds(),
    lockTimeoutMs: batch.lockTimeout?.toMilliseconds(),
    batchStatementTimeoutMs: batch.batchStatementTimeout?.toMilliseconds(),
    migrateBudgetMs: batch.migrateBudget?.toMilliseconds(),
    leaseTtlSeconds: batch.leaseTtl?.toSeconds(),
    engineStatementTimeoutMs: batch.engineStatementTimeout?.toMilliseconds(),
    idleInTransactionTimeoutMs: batch.idleInTransactionTimeout?.toMilliseconds(),
  };
  const parsed = settingsOverridesSchema.safeParse(overrides);
  const propName = (setting: string) => BATCH_SETTING_PROPS[setting as keyof SettingsOverrides] ?? setting;
  if (!parsed.success) {
    throw new ConstructPropsError(
      'batchSettings',
      `batchSettings: ${parsed.error.issues.map((i) => `${propName(String(i.path[0]))}: ${i.message}`).join('; ')}`,
    );
  }
  const problems = settingsProblems(resolveSettings(parsed.data), propName);
  if (problems.length > 0) throw new ConstructPropsError('batchSettings', `batchSettings: ${problems.join('; ')}`);
  return Object.fromEntries(Object.entries(parsed.data).filter(([, v]) => v !== undefined)) as SettingsOverrides;
}

function grantEcsDrainReads(
  role: iam.Role,
  services: readonly ResolvedEcsService[],
): void {
  if (services.length === 0) return;
  role.addToPolicy(new iam.PolicyStatement({ actions: ['ecs:DescribeServices'], resources: services.map((s) => s.serviceArn) }));
  const clusterArns = [...new Set(services.map((s) => s.clusterArn))];
  // ListTasks is authorised on container instances, filtered by the ecs:cluster condition key.
  role.addToPolicy(
    new iam.PolicyStatement({
      actions: ['ecs:ListTasks'],
      resources: ['*'],
      conditions: { ArnEquals: { 'ecs:cluster': clusterArns } },
    }),
  );
  // Task IDs are not known at deploy time: DescribeTasks is limited to the clusters by the same condition key.
  role.addToPolicy(
    new iam.PolicyStatement({
      actions: ['ecs:DescribeTasks'],
      resources: ['*'],
      conditions: { ArnEquals: { 'ecs:cluster': clusterArns } },
    }),
  );
}

/**
 * The cdk-nag findings this construct accepts, each acknowledged with its reason where it arises; anything else
 * cdk-nag reports about it is a defect.
 */
function acknowledgeFindings(
  upgrade: Construct,
  stateMachine: sfn.StateMachine,
  functions: Readonly<Record<string, UpgradeFunction>>,
): void {
  for (const [task, fn] of Object.entries(functions)) {
    Validations.of(fn.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'X-Ray tracing (xray:PutTraceSegments, xray:PutTelemetryRecords) only supports "*".' +
        (task === 'drain'
          ? ' ecs:ListTasks and ecs:DescribeTasks are authorised on "*" only, limited to the configured clusters by the ecs:cluster condition.'
          : ''),
    });
  }
  Validations.of(stateMachine.role).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason:
      'Step Functions log delivery (logs:CreateLogDelivery, logs:DescribeLogGroups, ...) and X-Ray tracing only support "*".',
  });
  const stack = Stack.of(upgrade);
  for (const fn of Object.values(functions)) {
    const logicalId = stack.getLogicalId(fn.function.node.defaultChild as CfnElement);
    Validations.of(stateMachine.role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${logicalId}.Arn>:*]`,
      reason: 'The state machine invokes its own function; "<function ARN>:*" covers that function\'s versions and aliases only.',
    });
  }
}
