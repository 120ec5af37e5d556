import { App, CfnElement, Duration, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import aslValidator from 'asl-validator';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { synthesizeStateMachine } from '../bin/local/synthesized-state-machine.ts';
import { RETRY_POLICIES } from '../lambdas/core/retry-policies.ts';
import { STATE_NAMES, WORKFLOW_TASKS, type WorkflowTask } from '../lambdas/core/workflow/state-names.ts';
import { readAppConfig } from '../lib/app-config.ts';
import { DemoDatabaseStack } from '../lib/demo-database-stack.ts';
import { ConstructPropsError } from '../lib/construct-props-error.ts';
import { DrainSource } from '../lib/drain-source.ts';
import {
  ExpandMigrateContractUpgrade,
  type ExpandMigrateContractUpgradeProps,
} from '../lib/expand-migrate-contract-upgrade.ts';
import { UpgradeStack, type UpgradeStackProps } from '../lib/upgrade-stack.ts';
import { DEMO_MIGRATIONS, writeMigrations } from './support/catalog-fixtures.ts';

const ENV = { account: '123456789012', region: 'us-east-1' } as const;
const CLUSTER_ARN = 'arn:aws:rds:us-east-1:123456789012:cluster:orders';
const SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:orders-db-AbCdEf';
const ECS_CLUSTER_ARN = 'arn:aws:ecs:us-east-1:123456789012:cluster/prod';
const TOPIC_ARN = 'arn:aws:sns:us-east-1:123456789012:emc-oncall';

/** The transient errors each phase Task retries as they are, and nothing else of the engine's. */
const TRANSIENT_ERRORS = [
  ['DatabaseResumingError', 'DatabaseUnavailableError'],
  ['LockTimeoutError'],
  ['IndexBuildInProgressError'],
  ['TransactionConflictError'],
  ['TransactionNotFoundError', 'DataApiInternalError'],
  ['LeaseBusyError'],
];
const LAMBDA_THROTTLED = ['Lambda.TooManyRequestsException'];
const LAMBDA_SERVICE_ERRORS = [
  'Lambda.ClientExecutionTimeoutException',
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
];

function newApp(context: Record<string, unknown> = {}): App {
  return new App({ context: { 'aws:cdk:bundling-stacks': [], ...context } });
}

function upgradeStack(props: Partial<UpgradeStackProps> = {}, app = newApp()): UpgradeStack {
  return new UpgradeStack(app, 'EmcUpgrade', {
    env: ENV,
    clusterArn: CLUSTER_ARN,
    secretArn: SECRET_ARN,
    databaseName: 'orders',
    migrationsDirectory: DEMO_MIGRATIONS,
    drainSource: DrainSource.ecsServices([
      { cluster: ECS_CLUSTER_ARN, serviceName: 'orders-api' },
      { cluster: ECS_CLUSTER_ARN, serviceName: 'orders-worker' },
    ]),
    ...props,
  });
}

type Resource = { Type: string; Properties: Record<string, any> };
type Statement = { Action: string | string[]; Resource: unknown; Condition?: Record<string, unknown>; Effect: string };

function resourcesOf(template: Template, type: string): [string, Resource][] {
  return Object.entries(template.findResources(type)) as [string, Resource][];
}

function actionsOf(statement: Statement): string[] {
  return Array.isArray(statement.Action) ? statement.Action : [statement.Action];
}

/** Every IAM policy statement of the template, with the roles the policy is attached to. */
function statementsOf(template: Template): { roles: string[]; statement: Statement }[] {
  return resourcesOf(template, 'AWS::IAM::Policy').flatMap(([, policy]) =>
    (policy.Properties.PolicyDocument.Statement as Statement[]).map((statement) => ({
      roles: (policy.Properties.Roles as { Ref: string }[]).map((r) => r.Ref),
      statement,
    })),
  );
}

/** `{ Fn::Join: ['', ['arn:', { Ref: 'AWS::Partition' }, ...]] }` as the ARN CloudFormation makes of it in `aws`. */
function resolvePartition(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(resolvePartition);
  if (value && typeof value === 'object') {
    const object = value as Record<string, unknown>;
    if ('Fn::Join' in object) {
      const [separator, parts] = object['Fn::Join'] as [string, unknown[]];
      return parts.map(resolvePartition).join(separator);
    }
    if ((object as { Ref?: unknown }).Ref === 'AWS::Partition') return 'aws';
  }
  return value;
}

function thrownBy(action: () => void): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  throw new Error('expected the action to throw');
}

function logicalIdOf(stack: Stack, construct: { node: { defaultChild?: unknown } }): string {
  return stack.resolve(stack.getLogicalId(construct.node.defaultChild as never)) as string;
}

describe('the UpgradeStack template', () => {
  let stack: UpgradeStack;
  let template: Template;
  beforeAll(() => {
    stack = upgradeStack({
      batchSettings: { batchSize: 2000, lockTimeout: Duration.seconds(5), migrateBudget: Duration.minutes(5) },
      failureTopicArn: TOPIC_ARN,
    });
    template = Template.fromStack(stack);
  });

  it('has one function per task, on Node.js 24 and ARM64, traced, logging JSON to its own encrypted log group', () => {
    template.resourceCountIs('AWS::Lambda::Function', 7);
    const functions = resourcesOf(template, 'AWS::Lambda::Function');
    const logGroups = new Map(resourcesOf(template, 'AWS::Logs::LogGroup'));
    const [keyId] = Object.keys(template.findResources('AWS::KMS::Key', { Properties: { EnableKeyRotation: true } }));
    expect(keyId).toBeDefined();
    const used = new Set<string>();
    for (const [id, fn] of functions) {
      expect(fn.Properties, id).toMatchObject({
        Runtime: 'nodejs24.x',
        Architectures: ['arm64'],
        TracingConfig: { Mode: 'Active' },
        LoggingConfig: { LogFormat: 'JSON' },
      });
      const logGroupId = (fn.Properties.LoggingConfig.LogGroup as { Ref: string }).Ref;
      const logGroup = logGroups.get(logGroupId);
      expect(logGroup?.Properties, `${id}'s log group`).toMatchObject({
        RetentionInDays: 365,
        KmsKeyId: { 'Fn::GetAtt': [keyId, 'Arn'] },
      });
      used.add(logGroupId);
      // The role starts empty: no AWS managed policy (AWSLambdaBasicExecutionRole grants logs on every group).
      const roleId = (fn.Properties.Role as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
      expect(template.toJSON().Resources[roleId].Properties.ManagedPolicyArns, `${id}'s role`).toBeUndefined();
    }
    expect(used.size, 'each function has a log group of its own').toBe(7);
    // Each function may write to its own log group only.
    const logWrites = statementsOf(template).filter(({ statement }) => actionsOf(statement).includes('logs:PutLogEvents'));
    expect(logWrites).toHaveLength(7);
    for (const { statement } of logWrites) {
      expect(used.has((statement.Resource as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0])).toBe(true);
    }
  });

  it('configures every function with the cluster, the secret, the database, the catalog, the settings and the drain source', () => {
    const expected = {
      EMC_CLUSTER_ARN: CLUSTER_ARN,
      EMC_SECRET_ARN: SECRET_ARN,
      EMC_DATABASE_NAME: 'orders',
      EMC_CATALOG_FILE: 'emc-catalog.json',
      EMC_DRAIN_TIMEOUT_SECONDS: '7200',
    };
    for (const [id, fn] of resourcesOf(template, 'AWS::Lambda::Function')) {
      const variables = fn.Properties.Environment.Variables as Record<string, string>;
      expect(variables, id).toMatchObject(expected);
      expect(JSON.parse(variables.EMC_SETTINGS!), id).toEqual({ batchSize: 2000, lockTimeoutMs: 5000, migrateBudgetMs: 300_000 });
      expect(JSON.parse(variables.EMC_DRAIN_SOURCE!), id).toEqual({
        kind: 'ecs',
        services: [
          { cluster: ECS_CLUSTER_ARN, service: 'orders-api' },
          { cluster: ECS_CLUSTER_ARN, service: 'orders-worker' },
        ],
      });
    }
    // The migrate call's budget plus one batch must fit in the function's timeout.
    const migrate = resourcesOf(template, 'AWS::Lambda::Function').find(([, fn]) =>
      String(fn.Properties.Description).includes('migrate batches'),
    );
    expect(migrate?.[1].Properties.Timeout).toBe(900);
  });

  it('is a Standard state machine logging everything with execution data, traced with X-Ray', () => {
    template.resourceCountIs('AWS::StepFunctions::StateMachine', 1);
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineType: 'STANDARD',
      LoggingConfiguration: { Level: 'ALL', IncludeExecutionData: true, Destinations: Match.anyValue() },
      TracingConfiguration: { Enabled: true },
    });
  });

  it('grants the Data API on the one cluster and the one secret, ECS reads to the drain function alone', () => {
    const statements = statementsOf(template);
    const functionRoles = Object.values(stack.upgrade.functions).map((f) => logicalIdOf(stack, f.role));
    const drainRole = logicalIdOf(stack, stack.upgrade.functions.drain.role);

    const dataApi = statements.filter(({ statement }) => actionsOf(statement).some((a) => a.startsWith('rds-data:')));
    expect(dataApi.flatMap((s) => s.roles).sort()).toEqual([...functionRoles].sort());
    for (const { statement } of dataApi) {
      expect(statement.Resource).toBe(CLUSTER_ARN);
      expect(actionsOf(statement).sort()).toEqual([
        'rds-data:BeginTransaction',
        'rds-data:CommitTransaction',
        'rds-data:ExecuteStatement',
        'rds-data:RollbackTransaction',
      ]);
    }

    const secrets = statements.filter(({ statement }) => actionsOf(statement).some((a) => a.startsWith('secretsmanager:')));
    expect(secrets.flatMap((s) => s.roles).sort()).toEqual([...functionRoles].sort());
    for (const { statement } of secrets) {
      expect(actionsOf(statement)).toContain('secretsmanager:GetSecretValue');
      expect(statement.Resource).toBe(SECRET_ARN);
    }

    const allEcs = statements.filter(({ statement }) => actionsOf(statement).some((a) => a.startsWith('ecs:')));
    // The drain function alone talks to ECS: it also records the old release before expand, for the plan.
    expect(new Set(allEcs.flatMap((s) => s.roles))).toEqual(new Set([drainRole]));
    const ecs = allEcs.filter((s) => s.roles.includes(drainRole));
    const byAction = new Map(ecs.flatMap(({ statement }) => actionsOf(statement).map((a) => [a, statement] as const)));
    expect([...byAction.keys()].sort()).toEqual(['ecs:DescribeServices', 'ecs:DescribeTasks', 'ecs:ListTasks']);
    expect(resolvePartition(byAction.get('ecs:DescribeServices')!.Resource)).toEqual([
      'arn:aws:ecs:us-east-1:123456789012:service/prod/orders-api',
      'arn:aws:ecs:us-east-1:123456789012:service/prod/orders-worker',
    ]);
    expect(byAction.get('ecs:DescribeServices')!.Condition).toBeUndefined();
    for (const action of ['ecs:ListTasks', 'ecs:DescribeTasks']) {
      expect(byAction.get(action)!.Condition, action).toEqual({ ArnEquals: { 'ecs:cluster': [ECS_CLUSTER_ARN] } });
    }
    // Nothing else of the template may touch ECS, and no statement allows every action of a service.
    for (const { statement } of statements) {
      expect(actionsOf(statement).filter((a) => a.endsWith(':*') || a === '*')).toEqual([]);
    }
  });

  it('grants kms:Decrypt on the secret\'s customer-managed key to every Data API caller, through Secrets Manager only', () => {
    const keyArn = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    const keyed = upgradeStack({ secretKmsKeyArn: keyArn });
    const decrypts = statementsOf(Template.fromStack(keyed)).filter(({ statement }) => actionsOf(statement).some((a) => a.startsWith('kms:')));
    const functionRoles = Object.values(keyed.upgrade.functions).map((f) => logicalIdOf(keyed, f.role));
    expect(decrypts.flatMap((s) => s.roles).sort()).toEqual([...functionRoles].sort());
    for (const { statement } of decrypts) {
      expect(statement).toMatchObject({
        Effect: 'Allow',
        Action: 'kms:Decrypt',
        Resource: keyArn,
        Condition: { StringEquals: { 'kms:ViaService': 'secretsmanager.us-east-1.amazonaws.com' } },
      });
    }
    // Without the key (the AWS managed key), no function may use any KMS key.
    const plain = statementsOf(template).filter(({ statement }) => actionsOf(statement).some((a) => a.startsWith('kms:')));
    expect(plain).toEqual([]);
  });

  it('grants the same for a secret that carries its imported key (CDK\'s grantRead adds nothing for one)', () => {
    const keyArn = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    const stack = new Stack(newApp(), 'Test', { env: ENV });
    const upgrade = new ExpandMigrateContractUpgrade(stack, 'Upgrade', {
      clusterArn: CLUSTER_ARN,
      secret: secretsmanager.Secret.fromSecretAttributes(stack, 'Secret', {
        secretCompleteArn: SECRET_ARN,
        encryptionKey: kms.Key.fromKeyArn(stack, 'Key', keyArn),
      }),
      databaseName: 'orders',
      migrationsDirectory: DEMO_MIGRATIONS,
      drainSource: DrainSource.databaseSessions('orders-api/v41%'),
    });
    const decrypts = statementsOf(Template.fromStack(stack)).filter(({ statement }) => actionsOf(statement).includes('kms:Decrypt'));
    expect(decrypts.flatMap((s) => s.roles).sort()).toEqual(Object.values(upgrade.functions).map((f) => logicalIdOf(stack, f.role)).sort());
    for (const { statement } of decrypts) {
      expect(statement).toMatchObject({ Resource: keyArn, Condition: { StringEquals: { 'kms:ViaService': 'secretsmanager.us-east-1.amazonaws.com' } } });
    }
  });

  it('gives a databaseSessions drain source no ECS permission at all', () => {
    const sessions = Template.fromStack(upgradeStack({ drainSource: DrainSource.databaseSessions('orders-api/v41%') }));
    const ecs = statementsOf(sessions).filter(({ statement }) => actionsOf(statement).some((a) => a.startsWith('ecs:')));
    expect(ecs).toEqual([]);
    for (const [, fn] of resourcesOf(sessions, 'AWS::Lambda::Function')) {
      expect(JSON.parse(fn.Properties.Environment.Variables.EMC_DRAIN_SOURCE)).toEqual({
        kind: 'database-sessions',
        applicationNamePattern: 'orders-api/v41%',
      });
    }
    // No failure topic given: no rule.
    sessions.resourceCountIs('AWS::Events::Rule', 0);
  });

  it('sends failed, timed-out and aborted executions of this state machine to the failure topic', () => {
    template.resourceCountIs('AWS::Events::Rule', 1);
    const [[, rule]] = resourcesOf(template, 'AWS::Events::Rule') as [[string, Resource]];
    const [stateMachineId] = Object.keys(template.findResources('AWS::StepFunctions::StateMachine'));
    expect(rule.Properties.EventPattern).toEqual({
      source: ['aws.states'],
      'detail-type': ['Step Functions Execution Status Change'],
      detail: { status: ['FAILED', 'TIMED_OUT', 'ABORTED'], stateMachineArn: [{ Ref: stateMachineId }] },
    });
    expect(rule.Properties.Targets).toHaveLength(1);
    expect(rule.Properties.Targets[0]).toMatchObject({ Arn: TOPIC_ARN });
    expect(rule.Properties.Targets[0].InputTransformer).toEqual({
      InputPathsMap: { 'detail-name': '$.detail.name', 'detail-status': '$.detail.status', 'detail-executionArn': '$.detail.executionArn' },
      InputTemplate:
        '"emc-upgrade execution <detail-name> ended <detail-status>. For the failed step, the error and the next safe action, run: emc why <detail-executionArn>"',
    });
  });

  it('uses in every input template only placeholders its InputPathsMap declares (or EventBridge\'s predefined ones)', () => {
    // EventBridge input transformation: variables are used in the template as <variable-name>; the only others are
    // the predefined aws.events.* variables.
    const predefined = ['aws.events.rule-arn', 'aws.events.rule-name', 'aws.events.event.ingestion-time', 'aws.events.event', 'aws.events.event.json'];
    const transformers = resourcesOf(template, 'AWS::Events::Rule').flatMap(([, rule]) =>
      (rule.Properties.Targets as { InputTransformer?: { InputPathsMap?: Record<string, string>; InputTemplate: string } }[]).flatMap(
        (t) => (t.InputTransformer ? [t.InputTransformer] : []),
      ),
    );
    expect(transformers.length).toBeGreaterThan(0);
    for (const { InputPathsMap: paths = {}, InputTemplate: text } of transformers) {
      const placeholders = [...text.matchAll(/<([^<>]*)>/g)].map((m) => m[1]!);
      expect(placeholders.length).toBeGreaterThan(0);
      expect(placeholders.filter((p) => !Object.hasOwn(paths, p) && !predefined.includes(p)), text).toEqual([]);
    }
  });
});

describe('the synthesized state machine definition', () => {
  let definition: { StartAt: string; QueryLanguage?: string; States: Record<string, any> };
  let functionTimeouts: Map<string, number>;
  beforeAll(() => {
    const synthesized = synthesizeStateMachine({
      migrationsDirectory: DEMO_MIGRATIONS,
      drainSource: DrainSource.databaseSessions('demo-app-old%'),
    });
    definition = synthesized.definition as unknown as typeof definition;
    const resources = (synthesized.template as { Resources: Record<string, Resource> }).Resources;
    functionTimeouts = new Map(
      Object.entries(resources)
        .filter(([, r]) => r.Type === 'AWS::Lambda::Function')
        .map(([id, r]) => [id, r.Properties.Timeout as number]),
    );
  });

  /** The Lambda Task states (the continuation's StartExecution Task has its own test). */
  const taskStates = () =>
    Object.entries(definition.States).filter(([, s]) => s.Type === 'Task' && s.Resource !== 'arn:aws:states:::states:startExecution');
  const taskOf = (stateName: string) =>
    (Object.entries(STATE_NAMES) as [WorkflowTask, string][]).find(([, name]) => name === stateName)?.[0];

  it('is valid Amazon States Language', () => {
    // The validator writes QueryLanguage into the states it checks: give it a copy.
    const result = aslValidator(structuredClone(definition), { checkPaths: true, checkArn: true });
    expect(result.errorsText('\n')).toBe('');
    expect(result.isValid).toBe(true);
  });

  it('lists its states in the order an operator reads them', () => {
    expect(definition.StartAt).toBe('Start upgrade');
    expect(Object.keys(definition.States)).toEqual([
      'Start upgrade',
      'Expand schema',
      'Stop after expand?',
      'Start migrating',
      'Migrate data (one batch run)',
      'Migration finished?',
      'Stop after migrate?',
      'Start waiting for old release to drain',
      'Check old release drained',
      'Wait for old tasks to drain',
      'Old release drained?',
      'Contract schema',
      'Release lease and summarise',
      'Upgrade complete',
      'Continue in a new execution',
      'Prepare continuation',
      'Record failure',
      'Upgrade failed',
    ]);
    expect(taskStates().map(([name]) => name).sort()).toEqual([...Object.values(STATE_NAMES), 'Record failure'].sort());
  });

  it('stays in JSONPath mode without variables (the local runner silently ignores JSONata and Assign)', () => {
    expect(definition.QueryLanguage ?? 'JSONPath').toBe('JSONPath');
    const offending: string[] = [];
    const walk = (value: unknown, where: string) => {
      if (Array.isArray(value)) value.forEach((v, i) => walk(v, `${where}[${i}]`));
      else if (value && typeof value === 'object') {
        for (const [key, v] of Object.entries(value)) {
          if (key === 'Assign' || key === 'Arguments' || key === 'Output') offending.push(`${where}.${key}`);
          if (key === 'QueryLanguage' && v !== 'JSONPath') offending.push(`${where}.${key}=${String(v)}`);
          walk(v, `${where}.${key}`);
        }
      } else if (typeof value === 'string' && value.trimStart().startsWith('{%')) offending.push(`${where}: ${value}`);
    };
    walk(definition, '$');
    expect(offending).toEqual([]);
  });

  it('gives each Lambda Task its function timeout, and retries only the transient errors', () => {
    for (const [name, state] of taskStates()) {
      const functionId = /:function:([A-Za-z0-9]+)$/.exec(state.Resource)?.[1];
      expect(state.TimeoutSeconds, name).toBe(functionTimeouts.get(functionId!));
      const retried = (state.Retry as { ErrorEquals: string[] }[]).map((r) => r.ErrorEquals);
      expect(retried.flat(), name).not.toContain('States.ALL');
      expect(retried.flat(), name).not.toContain('StepFailedError');
      // Lock waits and index builds come only from the tasks that run catalog steps.
      const runsSteps = ([STATE_NAMES.start, STATE_NAMES.expand, STATE_NAMES.migrate, STATE_NAMES.contract] as string[]).includes(name);
      expect(retried, name).toEqual(
        name === 'Record failure'
          ? [LAMBDA_SERVICE_ERRORS, LAMBDA_THROTTLED]
          : [
              LAMBDA_SERVICE_ERRORS,
              LAMBDA_THROTTLED,
              ...TRANSIENT_ERRORS.filter((group) => runsSteps || !['LockTimeoutError', 'IndexBuildInProgressError'].includes(group[0]!)),
            ],
      );
      // Every engine error a Retry names is one the compiler knows as transient (RETRY_POLICIES' keys).
      const engineRetried = retried.flat().filter((e) => !e.startsWith('Lambda.'));
      expect(engineRetried.every((e) => Object.hasOwn(RETRY_POLICIES, e)), name).toBe(true);
    }
    const lockRetry = (definition.States[STATE_NAMES.expand].Retry as { ErrorEquals: string[] }[]).find((r) =>
      r.ErrorEquals.includes('LockTimeoutError'),
    );
    expect(lockRetry).toMatchObject({ IntervalSeconds: 10, MaxAttempts: 5, BackoffRate: 2, JitterStrategy: 'FULL' });
  });

  it('catches every failure of a phase into $.failedIn.<task> and reports it through "Record failure"', () => {
    for (const [name, state] of taskStates()) {
      if (name === 'Record failure') {
        expect(state.Catch, 'the failure report must not loop into itself').toBeUndefined();
        expect(state.Next).toBe('Upgrade failed');
        continue;
      }
      const task = taskOf(name);
      expect(task, name).toBeDefined();
      expect(state.Catch, name).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: `$.failedIn.${task}`, Next: 'Record failure' }]);
    }
    expect(WORKFLOW_TASKS.map((t) => definition.States[STATE_NAMES[t]]?.Type)).toEqual(WORKFLOW_TASKS.map(() => 'Task'));
    expect(definition.States['Upgrade failed']).toEqual({
      Type: 'Fail',
      ErrorPath: '$.failure.error',
      CausePath: '$.failure.cause',
    });
    expect(definition.States['Record failure'].ResultPath).toBe('$.failure');
  });

  it('continues a migration that would outgrow the history in a new execution with the same input, handing the lease over', () => {
    expect(definition.States['Prepare continuation']).toEqual({
      Type: 'Pass',
      Parameters: { 'continueFrom.$': '$$.Execution.Id', 'oldTaskDefinitions.$': '$.plan.oldTaskDefinitions' },
      ResultPath: '$.continuation',
      Next: 'Continue in a new execution',
    });
    const start = definition.States['Continue in a new execution'];
    expect(start).toMatchObject({
      Type: 'Task',
      Resource: 'arn:aws:states:::states:startExecution',
      Parameters: { 'StateMachineArn.$': '$$.StateMachine.Id', 'Input.$': 'States.JsonMerge($$.Execution.Input, $.continuation, false)' },
      ResultSelector: { outcome: 'continued in a new execution', 'continuedIn.$': '$.ExecutionArn' },
      ResultPath: '$.summary',
      Next: 'Upgrade complete',
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.failedIn.continuation', Next: 'Record failure' }],
    });
    expect(start.Retry[0].ErrorEquals).not.toContain('States.ALL');
  });

  it('loops migrate through a Choice and the drain check through a Wait', () => {
    const migrateState = STATE_NAMES.migrate;
    expect(definition.States[migrateState].Next).toBe('Migration finished?');
    expect(definition.States['Start migrating']).toEqual({
      Type: 'Pass',
      Result: { calls: 0, finished: false },
      ResultPath: '$.migrate',
      Next: migrateState,
    });
    expect(definition.States[migrateState].Parameters).toEqual({ 'plan.$': '$.plan', 'callsBefore.$': '$.migrate.calls' });
    expect(definition.States['Migration finished?']).toEqual({
      Type: 'Choice',
      Choices: [
        { Variable: '$.migrate.finished', BooleanEquals: true, Next: 'Stop after migrate?' },
        { Variable: '$.migrate.calls', NumericGreaterThanEquals: 1500, Next: 'Prepare continuation' },
      ],
      Default: migrateState,
    });

    expect(definition.States[STATE_NAMES.drain].Next).toBe('Old release drained?');
    expect(definition.States['Old release drained?']).toEqual({
      Type: 'Choice',
      Choices: [{ Variable: '$.drain.drained', BooleanEquals: true, Next: STATE_NAMES.contract }],
      Default: 'Wait for old tasks to drain',
    });
    expect(definition.States['Wait for old tasks to drain']).toEqual({
      Type: 'Wait',
      Seconds: 30,
      Next: STATE_NAMES.drain,
    });
    // Contract only ever follows a confirmed drain.
    const intoContract = Object.entries(definition.States).filter(([, s]) =>
      JSON.stringify(s).includes(`"Next":"${STATE_NAMES.contract}"`) || s.Default === STATE_NAMES.contract,
    );
    expect(intoContract.map(([name]) => name)).toEqual(['Old release drained?']);
  });
});

describe('the definition with an ECS drain source', () => {
  let definition: { StartAt: string; States: Record<string, any> };
  let drainFunction: string;
  beforeAll(() => {
    const synthesized = synthesizeStateMachine({
      migrationsDirectory: DEMO_MIGRATIONS,
      drainSource: DrainSource.ecsServices([{ cluster: ECS_CLUSTER_ARN, serviceName: 'orders-api' }]),
    });
    definition = synthesized.definition as unknown as typeof definition;
    drainFunction = definition.States[STATE_NAMES.drain].Resource;
  });

  it('is valid Amazon States Language', () => {
    const result = aslValidator(structuredClone(definition), { checkPaths: true, checkArn: true });
    expect(result.errorsText('\n')).toBe('');
  });

  it('records the old release between "Start upgrade" and expand, when the plan asks, with the drain function', () => {
    expect(definition.StartAt).toBe('Start upgrade');
    expect(definition.States['Start upgrade'].Next).toBe('Old release to record?');
    expect(definition.States['Old release to record?']).toEqual({
      Type: 'Choice',
      Choices: [{ Variable: '$.plan.recordOldRelease', BooleanEquals: true, Next: 'Record old release' }],
      Default: 'Expand schema',
    });
    const record = definition.States['Record old release'];
    expect(record).toMatchObject({
      Type: 'Task',
      Resource: drainFunction,
      Parameters: { request: 'record-old-release', 'plan.$': '$.plan' },
      // Into the plan: the drain polls and the continuation read it there.
      ResultPath: '$.plan.oldTaskDefinitions',
      Next: 'Expand schema',
      TimeoutSeconds: definition.States[STATE_NAMES.drain].TimeoutSeconds,
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.failedIn.recordOldRelease', Next: 'Record failure' }],
    });
    expect(record.Retry).toEqual(definition.States[STATE_NAMES.drain].Retry);
  });
});

describe('cdk-nag AwsSolutions checks', () => {
  /** Every acknowledgement recorded in the construct tree, with its reason. */
  function acknowledgements(stack: Stack): { path: string; id: string; reason: unknown }[] {
    return stack.node.findAll().flatMap((c) =>
      c.node.metadata
        .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
        .flatMap((m) => Object.entries(m.data as Record<string, unknown>).map(([id, reason]) => ({ path: c.node.path, id, reason }))),
    );
  }

  function expectCleanAndExplained(stack: Stack, allowed: RegExp[]) {
    const report = new AwsSolutionsChecks().validateScope(stack);
    expect(report.violations.map((v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
    expect(report.success).toBe(true);
    const acknowledged = acknowledgements(stack);
    expect(acknowledged.length).toBeGreaterThan(0);
    for (const { path, id, reason } of acknowledged) {
      expect(typeof reason === 'string' && reason.trim().length > 10, `${path} ${id} needs a reason`).toBe(true);
    }
    // Only the findings reviewed so far are acknowledged; a new acknowledgement needs a review (and this list).
    const nag = acknowledged.filter((a) => a.id.includes('AwsSolutions-'));
    for (const { path, id } of nag) {
      expect(allowed.some((pattern) => pattern.test(id)), `${path}: ${id}`).toBe(true);
    }
    return nag;
  }

  const IAM5_STAR = /^Annotation::AwsSolutions-IAM5\[Resource::\*\]$/;
  const IAM5_OWN_FUNCTION = /^Annotation::AwsSolutions-IAM5\[Resource::<Upgrade[A-Za-z]+Function[0-9A-F]{8}\.Arn>:\*\]$/;

  it('finds nothing in the UpgradeStack with an ECS drain source, and every acknowledgement gives its reason', () => {
    const stack = upgradeStack({
      failureTopicArn: TOPIC_ARN,
      secretKmsKeyArn: 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
    });
    const nag = expectCleanAndExplained(stack, [IAM5_STAR, IAM5_OWN_FUNCTION]);
    // The state machine's "<function ARN>:*" findings are acknowledged one function at a time, never wholesale.
    expect(nag.filter((a) => IAM5_OWN_FUNCTION.test(a.id))).toHaveLength(7);
    expect(nag.every((a) => a.path.startsWith('EmcUpgrade/Upgrade/'))).toBe(true);
  });

  it('finds nothing in the DemoDatabaseStack', () => {
    const stack = new DemoDatabaseStack(newApp(), 'EmcUpgradeDemo', { env: ENV, migrationsDirectory: DEMO_MIGRATIONS });
    const nag = expectCleanAndExplained(stack, [
      IAM5_STAR,
      IAM5_OWN_FUNCTION,
      /^Annotation::AwsSolutions-RDS10$/,
      /^Annotation::AwsSolutions-SMG4$/,
    ]);
    expect(nag.filter((a) => /RDS10|SMG4/.test(a.id)).map((a) => a.path)).toEqual(['EmcUpgradeDemo/Database', 'EmcUpgradeDemo/Database']);
  });
});

describe('props that cannot work fail the synth, naming the prop', () => {
  /** A thunk that builds the construct with the given props over working defaults. */
  function construct(
    props: Partial<ExpandMigrateContractUpgradeProps> | ((stack: Stack) => Partial<ExpandMigrateContractUpgradeProps>),
  ): () => void {
    return () => {
      const stack = new Stack(newApp(), 'Test', { env: ENV });
      new ExpandMigrateContractUpgrade(stack, 'Upgrade', {
        clusterArn: CLUSTER_ARN,
        secret: secretsmanager.Secret.fromSecretCompleteArn(stack, 'Secret', SECRET_ARN),
        databaseName: 'orders',
        migrationsDirectory: DEMO_MIGRATIONS,
        drainSource: DrainSource.databaseSessions('orders-api/v41%'),
        ...(typeof props === 'function' ? props(stack) : props),
      });
    };
  }
  const importedCluster = (stack: Stack) =>
    rds.DatabaseCluster.fromDatabaseClusterAttributes(stack, 'Cluster', { clusterIdentifier: 'orders' });

  it('needs exactly one of cluster and clusterArn', () => {
    expect(construct((stack) => ({ cluster: importedCluster(stack) }))).toThrow(/exactly one of cluster or clusterArn/);
    expect(construct({ clusterArn: undefined })).toThrow(/exactly one of cluster or clusterArn/);
    expect(construct((stack) => ({ cluster: importedCluster(stack), clusterArn: undefined }))).not.toThrow();
  });

  it('checks clusterArn and databaseName', () => {
    expect(construct({ clusterArn: 'arn:aws:rds:us-east-1:123456789012:db:orders-1' })).toThrow(
      /clusterArn must be an Aurora cluster ARN .*"arn:aws:rds:us-east-1:123456789012:db:orders-1"/,
    );
    expect(() => upgradeStack({ clusterArn: 'orders' })).toThrow(/clusterArn/);
    expect(construct({ databaseName: 'orders-db' })).toThrow(/databaseName must be a PostgreSQL database name, got "orders-db"/);
    expect(() => upgradeStack({ databaseName: '' })).toThrow(/databaseName/);
  });

  it('validates the migrations directory at synth, naming the bad file', () => {
    const broken = writeMigrations({
      'bexar/expand01_add_column.sql': 'ALTER TABLE images ADD COLUMN visibility text;\n',
      'bexar/expand02_broken.sql': 'ALTER TABLE images ADD COLUMN ;\n',
    });
    expect(construct({ migrationsDirectory: broken })).toThrow(/migrationsDirectory .*expand02_broken\.sql/s);
    expect(construct({ migrationsDirectory: `${broken}/missing` })).toThrow(/missing/);
  });

  it('checks batchSettings, naming the setting', () => {
    expect(construct({ batchSettings: { batchSize: 0 } })).toThrow(/batchSettings: batchSize/);
    expect(construct({ batchSettings: { lockTimeout: Duration.millis(10) } })).toThrow(/batchSettings: lockTimeout/);
    expect(construct({ batchSettings: { migrateBudget: Duration.minutes(20) } })).toThrow(/batchSettings: migrateBudget/);
    expect(construct({ batchSettings: { batchSize: 1.5, leaseTtl: Duration.seconds(10) } })).toThrow(
      /batchSettings: batchSize: .*leaseTtl/,
    );
    // A combination that each value allows alone, named with the props' own names.
    expect(construct({ batchSettings: { migrateBudget: Duration.minutes(14), batchStatementTimeout: Duration.seconds(45) } })).toThrow(
      /batchSettings: migrateBudget \(840000 ms\) \+ batchStatementTimeout \(45000 ms\) \+ 60000 ms of margin must stay under/,
    );
    expect(construct({ batchSettings: { targetBatchDuration: Duration.seconds(11) } })).toThrow(/batchSettings: targetBatchDuration/);
    expect(construct({ batchSettings: { targetBatchDuration: Duration.seconds(5), batchStatementTimeout: Duration.seconds(5) } })).toThrow(
      /batchSettings: targetBatchDuration \(5000 ms\) must be under batchStatementTimeout \(5000 ms\)/,
    );
  });

  it('throws every refusal as a ConstructPropsError naming its prop', () => {
    const cases: [Partial<ExpandMigrateContractUpgradeProps>, string][] = [
      [{ clusterArn: 'orders' }, 'clusterArn'],
      [{ clusterArn: undefined }, 'cluster'],
      [{ databaseName: 'orders-db' }, 'databaseName'],
      [{ migrationsDirectory: '/nonexistent/migrations' }, 'migrationsDirectory'],
      [{ batchSettings: { batchSize: 0 } }, 'batchSettings'],
      [{ batchSettings: { migrateBudget: Duration.minutes(14), batchStatementTimeout: Duration.seconds(45) } }, 'batchSettings'],
      [{ drainPollInterval: Duration.hours(2) }, 'drainPollInterval'],
      [{ drainTimeout: Duration.seconds(1) }, 'drainTimeout'],
      [{ drainSource: DrainSource.ecsServices([]) }, 'drainSource'],
      [{ drainSource: DrainSource.databaseSessions('%') }, 'drainSource'],
    ];
    for (const [props, prop] of cases) {
      const error = thrownBy(construct(props));
      expect(error, prop).toBeInstanceOf(ConstructPropsError);
      expect(error, prop).toMatchObject({ name: 'ConstructPropsError', prop });
    }
  });

  it('needs a drain timeout of at least one poll interval', () => {
    expect(construct({ drainPollInterval: Duration.minutes(5), drainTimeout: Duration.minutes(1) })).toThrow(
      /drainTimeout \(1 minute\) must be at least drainPollInterval \(5 minutes\)/,
    );
    expect(construct({ drainPollInterval: Duration.minutes(5), drainTimeout: Duration.minutes(5) })).not.toThrow();
  });

  it('keeps one execution under the 25,000-event history: at most 1,000 drain polls and 1,500 migrate calls', () => {
    expect(construct({ drainPollInterval: Duration.seconds(10), drainTimeout: Duration.hours(3) })).toThrow(
      /makes more than 1000 drain polls.*25,000 events/,
    );
    expect(construct({ drainPollInterval: Duration.seconds(30), drainTimeout: Duration.hours(8) })).not.toThrow();
    for (const bad of [0, 1.5, 1501]) {
      expect(construct({ maxMigrateCallsPerExecution: bad })).toThrow(/maxMigrateCallsPerExecution must be a whole number from 1 to 1500/);
    }
  });

  it('lets the state machine start only itself, for the continuation of a long migration', () => {
    const stack = new Stack(newApp(), 'S', { env: ENV });
    const upgrade = new ExpandMigrateContractUpgrade(stack, 'Upgrade', {
      clusterArn: CLUSTER_ARN,
      secret: secretsmanager.Secret.fromSecretCompleteArn(stack, 'Secret', SECRET_ARN),
      databaseName: 'orders',
      migrationsDirectory: DEMO_MIGRATIONS,
      drainSource: DrainSource.databaseSessions('orders-api/v41%'),
    });
    const template = Template.fromStack(stack);
    const machineRole = stack.resolve((upgrade.stateMachine.role.node.defaultChild as CfnElement).logicalId) as string;
    const machineId = stack.resolve((upgrade.stateMachine.node.defaultChild as CfnElement).logicalId) as string;
    const starts = statementsOf(template).filter(({ statement }) => actionsOf(statement).includes('states:StartExecution'));
    expect(starts).toEqual([{ roles: [machineRole], statement: expect.objectContaining({ Effect: 'Allow', Resource: { Ref: machineId } }) }]);
  });

  it('refuses ECS services the drain function cannot reach: another account or region, naming both', () => {
    const services = (cluster: string | ((stack: Stack) => ecs.ICluster)) => (stack: Stack) => ({
      drainSource: DrainSource.ecsServices([
        { cluster: ECS_CLUSTER_ARN, serviceName: 'orders-api' },
        { cluster: typeof cluster === 'string' ? cluster : cluster(stack), serviceName: 'billing' },
      ]),
    });
    const refusal = (where: string, cluster = 'shared') =>
      new RegExp(
        `drainSource: services\\[1\\] \\(ECS service billing of cluster ${cluster}\\) is in ${where}, but the drain function runs in account 123456789012, region us-east-1: its own credentials and region cannot reach`,
      );
    for (const [cluster, where] of [
      ['arn:aws:ecs:us-east-1:210987654321:cluster/shared', 'account 210987654321, region us-east-1'],
      ['arn:aws:ecs:eu-west-1:123456789012:cluster/shared', 'account 123456789012, region eu-west-1'],
    ] as const) {
      const error = thrownBy(construct(services(cluster)));
      expect(error).toBeInstanceOf(ConstructPropsError);
      expect(error).toMatchObject({ prop: 'drainSource', message: expect.stringMatching(refusal(where)) });
    }
    // A cluster construct of another environment is refused the same way; one of the stack's own is accepted.
    const otherEnv = { account: '210987654321', region: 'eu-west-1' };
    const elsewhere = (stack: Stack) =>
      new ecs.Cluster(new Stack(stack.node.root as App, 'Other', { env: otherEnv }), 'Cluster', { clusterName: 'shared' });
    expect(construct(services(elsewhere))).toThrow(refusal('account 210987654321, region eu-west-1', 'Other/Cluster'));
    const here = (stack: Stack) => ecs.Cluster.fromClusterArn(stack, 'Shared', 'arn:aws:ecs:us-east-1:123456789012:cluster/shared');
    expect(construct(services(here))).not.toThrow();
  });

  it('accepts any ECS cluster in an environment-agnostic stack, where the accounts and regions cannot be compared', () => {
    const stack = new Stack(newApp(), 'Agnostic');
    const drainSource = DrainSource.ecsServices([{ cluster: 'arn:aws:ecs:eu-west-1:210987654321:cluster/shared', serviceName: 'billing' }]);
    expect(drainSource.bind(stack).ecsServices.map((s) => resolvePartition(stack.resolve(s.serviceArn)))).toEqual([
      'arn:aws:ecs:eu-west-1:210987654321:service/shared/billing',
    ]);
  });

  it('refuses a drain source that could never tell the old release apart', () => {
    expect(construct({ drainSource: DrainSource.ecsServices([]) })).toThrow(/drainSource: .*at least one service/);
    expect(
      construct({ drainSource: DrainSource.ecsServices([{ cluster: 'arn:aws:ecs:us-east-1:123456789012:prod', serviceName: 'api' }]) }),
    ).toThrow(/drainSource: services\[0\]\.cluster must be an ECS cluster ARN/);
    expect(
      construct({ drainSource: DrainSource.ecsServices([{ cluster: ECS_CLUSTER_ARN, serviceName: 'arn:aws:ecs:us-east-1:1:service/x' }]) }),
    ).toThrow(/drainSource: services\[0\]\.serviceName/);
    expect(construct({ drainSource: DrainSource.databaseSessions('%') })).toThrow(/drainSource: DrainSource\.databaseSessions\(\)/);
    expect(construct({ drainSource: DrainSource.databaseSessions('  ') })).toThrow(/drainSource/);
  });
});

describe('readAppConfig', () => {
  it('reads the emc: context keys, with defaults', () => {
    const config = readAppConfig(newApp({ 'emc:clusterArn': CLUSTER_ARN, 'emc:drainApplicationNamePattern': 'orders-api/v41%' }));
    expect(config).toMatchObject({
      clusterArn: CLUSTER_ARN,
      databaseName: 'postgres',
      migrationsDirectory: 'demo/migrations',
      demoDatabase: false,
    });
    expect(config.drainSource).toBeInstanceOf(DrainSource);
    // `cdk deploy -c emc:demoDatabase=true` arrives as a string.
    expect(readAppConfig(newApp({ 'emc:demoDatabase': 'true' })).demoDatabase).toBe(true);
  });

  it('names the context key in every error', () => {
    expect(() => readAppConfig(newApp({ 'emc:demoDatabase': 'yes' }))).toThrow(/"emc:demoDatabase" must be JSON/);
    expect(() => readAppConfig(newApp({ 'emc:databaseName': 5 }))).toThrow(/"emc:databaseName"/);
    expect(() => readAppConfig(newApp({ 'emc:ecsServices': '[{"cluster":"c"}]' }))).toThrow(/"emc:ecsServices\.0\.serviceName"/);
    expect(() =>
      readAppConfig(newApp({ 'emc:ecsServices': [{ cluster: ECS_CLUSTER_ARN, serviceName: 'api' }], 'emc:drainApplicationNamePattern': 'x%' })),
    ).toThrow(/"emc:ecsServices" or "emc:drainApplicationNamePattern", not both/);
  });

  it('passes the application role to the database-sessions drain source', () => {
    const config = readAppConfig(
      newApp({ 'emc:drainApplicationNamePattern': 'orders-api/v41%', 'emc:drainApplicationRole': 'orders_app' }),
    );
    expect(config.drainSource!.bind(new Stack()).config).toEqual({
      kind: 'database-sessions',
      applicationNamePattern: 'orders-api/v41%',
      applicationRole: 'orders_app',
    });
    expect(() => readAppConfig(newApp({ 'emc:drainApplicationRole': 'orders_app' }))).toThrow(
      /"emc:drainApplicationRole" belongs to the database-sessions drain source/,
    );
  });

  it('reads the secret\'s KMS key ARN, refusing anything but a key ARN', () => {
    const keyArn = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    expect(readAppConfig(newApp({ 'emc:secretKmsKeyArn': keyArn })).secretKmsKeyArn).toBe(keyArn);
    expect(() => readAppConfig(newApp({ 'emc:secretKmsKeyArn': 'arn:aws:kms:us-east-1:123456789012:alias/orders' }))).toThrow(
      /"emc:secretKmsKeyArn": must be a KMS key ARN/,
    );
  });

  it('refuses an unknown emc: key, so a typo never silently means the default', () => {
    expect(() => readAppConfig(newApp({ 'emc:databseName': 'orders' }))).toThrow(/"emc:databseName"/);
  });
});
