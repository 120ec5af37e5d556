import './support/quiet-handler-logs.ts';
import { DescribeServicesCommand, DescribeTasksCommand, ECSClient, ListTasksCommand, type Deployment } from '@aws-sdk/client-ecs';
import { mockClient } from 'aws-sdk-client-mock';
import { ExecutionError, StateMachine } from '../bin/local/step-functions-interpreter.ts';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { seedDemoDatabase } from '../bin/local/demo-database.ts';
import { synthesizeStateMachine } from '../bin/local/synthesized-state-machine.ts';
import { createContractTask } from '../lambdas/handlers/tasks/contract-task.ts';
import { createMigrateTask } from '../lambdas/handlers/tasks/migrate-task.ts';
import { createRecordFailureTask } from '../lambdas/handlers/tasks/record-failure-task.ts';
import { DrainSource as DrainSourceProp } from '../lib/drain-source.ts';
import type { DrainSourceConfig } from '../lambdas/core/drain/drain-gate.ts';
import { loadCatalog } from '../lambdas/core/index.ts';
import type { UpgradePlan } from '../lambdas/core/workflow/upgrade-plan.ts';
import { once } from '../lambdas/handlers/commons/dependencies.ts';
import type { TaskFailedError } from '../lambdas/handlers/commons/task.ts';
import { createDrainTask } from '../lambdas/handlers/tasks/drain-task.ts';
import { createExpandTask } from '../lambdas/handlers/tasks/expand-task.ts';
import { createFinishTask } from '../lambdas/handlers/tasks/finish-task.ts';
import { createStartTask } from '../lambdas/handlers/tasks/start-task.ts';
import { OLD_RELEASE_REQUEST, type OldReleaseTaskResult } from '../lambdas/core/workflow/task-contract.ts';
import { DEMO_MIGRATIONS } from './support/catalog-fixtures.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { rejectionOf } from './support/engine-faults.ts';

/**
 * The drain gate's part of "Start upgrade" and "Record old release": with an ECS source the plan asks for the old
 * release's task definitions and the drain function records them before expand (so a rollback fails the drain), and
 * an execution's input may name its release's session pattern.
 */
const REGION = 'us-east-1';
const CLUSTER = `arn:aws:ecs:${REGION}:123456789012:cluster/prod`;
const td = (revision: number) => `arn:aws:ecs:${REGION}:123456789012:task-definition/orders-api:${revision}`;
const ECS_SOURCE: DrainSourceConfig = { kind: 'ecs', services: [{ cluster: CLUSTER, service: 'orders-api' }] };
const SESSIONS: DrainSourceConfig = { kind: 'database-sessions', applicationNamePattern: 'demo-app-old%' };
const EXECUTION = 'arn:aws:states:us-east-1:123456789012:execution:Upgrade:drain-plan';

const ecsMock = mockClient(ECSClient);
const ecs = new ECSClient({ region: REGION, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });

/** A rolling-update service as DescribeServices answers it (API_Service, API_Deployment), with its live tasks. */
function serviceRuns(deployments: Deployment[], taskDefinitions: string[]): void {
  ecsMock.reset();
  ecsMock.on(DescribeServicesCommand).resolves({
    services: [{ serviceName: 'orders-api', serviceArn: `arn:aws:ecs:${REGION}:123456789012:service/prod/orders-api`, status: 'ACTIVE', deployments }],
    failures: [],
  });
  const arns = taskDefinitions.map((_, i) => `arn:aws:ecs:${REGION}:123456789012:task/prod/${String(i).padStart(32, '0')}`);
  // ListTasks filters on desiredStatus (default RUNNING): these tasks are all desired RUNNING.
  ecsMock.on(ListTasksCommand, { desiredStatus: 'RUNNING' }).resolves({ taskArns: arns });
  ecsMock.on(ListTasksCommand, { desiredStatus: 'STOPPED' }).resolves({ taskArns: [] });
  ecsMock.on(DescribeTasksCommand).resolves({
    tasks: taskDefinitions.map((taskDefinitionArn, i) => ({ taskArn: arns[i], taskDefinitionArn, lastStatus: 'RUNNING', desiredStatus: 'RUNNING' })),
    failures: [],
  });
}

const deployment = (status: 'PRIMARY' | 'ACTIVE' | 'INACTIVE', taskDefinition: string, rolloutState: 'COMPLETED' | 'FAILED' = 'COMPLETED'): Deployment => ({
  status,
  taskDefinition,
  rolloutState,
  runningCount: status === 'INACTIVE' ? 0 : 2,
  pendingCount: 0,
  createdAt: new Date('2026-11-25T03:00:00Z'),
});

describe('Start upgrade and the drain gate', () => {
  let db: TestDatabase;
  let client: import('../lambdas/core/index.ts').PgSqlClient;
  const handlers = (source: DrainSourceConfig) => {
    const deps = { sql: async () => client, catalog: once(() => loadCatalog(DEMO_MIGRATIONS)) };
    const drainFunction = createDrainTask({ sql: deps.sql, ecs: () => ecs, drainSource: source, drainTimeoutSeconds: 600 });
    return {
      start: createStartTask({ ...deps, settingsDefaults: { batchPauseMs: 0 }, drainSource: source }),
      expand: createExpandTask(deps),
      finish: createFinishTask(deps),
      drain: drainFunction,
      /** "Record old release" as the state machine runs it: the drain function's answer goes into the plan. */
      recordOldRelease: async (plan: UpgradePlan): Promise<UpgradePlan> => ({
        ...plan,
        oldTaskDefinitions: (await drainFunction({ request: OLD_RELEASE_REQUEST, plan })) as OldReleaseTaskResult,
      }),
    };
  };

  beforeAll(async () => {
    db = await createTestDatabase();
    client = db.client;
    await seedDemoDatabase(db.client, 200);
  });
  afterAll(async () => {
    await db.drop();
  });
  beforeEach(async () => {
    await db.pool.query('DROP SCHEMA IF EXISTS emc CASCADE');
  });

  it('records the old release before expand; a circuit-breaker rollback to it then fails the drain', async () => {
    serviceRuns([deployment('PRIMARY', td(41))], [td(41), td(41)]);
    const h = handlers(ECS_SOURCE);
    const planned = await h.start({ executionArn: EXECUTION, input: {} });
    // The start asks for the record and calls no ECS API itself: its function has no ECS client.
    expect(planned).toMatchObject({ recordOldRelease: true, oldTaskDefinitions: {} });
    expect(ecsMock.calls()).toHaveLength(0);
    const plan = await h.recordOldRelease(planned);
    expect(plan.oldTaskDefinitions).toEqual({ 'prod/orders-api': [td(41)] });

    // The new release orders-api:42 was deployed and failed; ECS rolled back to orders-api:41 (API_DeploymentCircuitBreaker:
    // "the service is rolled back to the last deployment that completed successfully").
    serviceRuns([deployment('PRIMARY', td(41)), deployment('INACTIVE', td(42), 'FAILED')], [td(41), td(41)]);
    const error = await rejectionOf(h.drain({ plan, previous: { polls: 0 } }));
    expect(error.name).toBe('DrainFailedError');
    // The handler throws the failure record (commons/task.ts): message and next action as typed fields.
    const { record } = error as TaskFailedError;
    expect(record.message).toContain('prod/orders-api (rolled-back): the service runs orders-api:41 again');
    expect(record.nextAction).toMatch(/^The new release is not deployed/);
  });

  it('"Record old release" fails, naming the service, when it does not exist; the plan it was given is unchanged', async () => {
    ecsMock.reset();
    ecsMock.on(DescribeServicesCommand).resolves({ services: [], failures: [{ arn: 'orders-api', reason: 'MISSING' }] });
    const h = handlers(ECS_SOURCE);
    const planned = (await h.start({ executionArn: EXECUTION, input: {} })) as UpgradePlan;
    const error = await rejectionOf(h.recordOldRelease(planned));
    expect(error.name).toBe('DrainFailedError');
    expect((error as TaskFailedError).record).toMatchObject({ phase: 'recordOldRelease', message: expect.stringContaining('prod/orders-api (missing)') });
    expect(planned.oldTaskDefinitions).toEqual({});
  });

  it('answers a plan that asks for no record with its own record, without calling ECS', async () => {
    ecsMock.reset();
    const carried = { 'prod/orders-api': [td(40)] };
    const plan = { ...((await handlers(SESSIONS).start({ executionArn: EXECUTION, input: {} })) as UpgradePlan), oldTaskDefinitions: carried };
    expect(plan.recordOldRelease).toBe(false);
    expect((await handlers(ECS_SOURCE).recordOldRelease(plan)).oldTaskDefinitions).toEqual(carried);
    expect(ecsMock.calls()).toHaveLength(0);
  });

  it('passes once the new release runs everywhere', async () => {
    serviceRuns([deployment('PRIMARY', td(41))], [td(41)]);
    const h = handlers(ECS_SOURCE);
    const plan = await h.recordOldRelease((await h.start({ executionArn: EXECUTION, input: {} })) as UpgradePlan);
    serviceRuns([deployment('PRIMARY', td(42))], [td(42), td(42)]);
    expect(await h.drain({ plan, previous: { polls: 0 } })).toMatchObject({ drained: true, newTaskDefinitions: { 'prod/orders-api': td(42) } });
  });

  it('an execution after expand must name the new release: it cannot tell it from the old one', async () => {
    serviceRuns([deployment('PRIMARY', td(42))], [td(42)]);
    const h = handlers(ECS_SOURCE);
    const first = (await h.start({ executionArn: `${EXECUTION}-1`, input: { stopAfter: 'expand' } })) as UpgradePlan;
    // No drain in this execution: nothing to record.
    expect(first).toMatchObject({ recordOldRelease: false, oldTaskDefinitions: {} });
    await h.expand({ plan: first });
    await h.finish({ plan: first });

    const error = await rejectionOf(h.start({ executionArn: `${EXECUTION}-2`, input: {} }));
    expect(error.name).toBe('InputError');
    expect((error as TaskFailedError).record.message).toContain('"newTaskDefinitions": expand already ran in an earlier execution');
    expect((error as TaskFailedError).record.message).toContain('"orders-api"');
    const named = (await h.start({ executionArn: `${EXECUTION}-3`, input: { newTaskDefinitions: { 'orders-api': 'orders-api:42' } } })) as UpgradePlan;
    expect(named).toMatchObject({ newTaskDefinitions: { 'orders-api': 'orders-api:42' }, recordOldRelease: false });
  });

  it('the input overrides the session pattern for its release', async () => {
    const h = handlers(SESSIONS);
    const plan = (await h.start({ executionArn: EXECUTION, input: { drain: { sessions: 'orders-v41%' } } })) as UpgradePlan;
    expect(plan.sessionPattern).toBe('orders-v41%');
    const v41 = new pg.Client({ connectionString: db.url, application_name: 'orders-v41.3' });
    await v41.connect();
    try {
      expect(await h.drain({ plan, previous: { polls: 0 } })).toMatchObject({
        drained: false,
        summary: expect.stringMatching(/^1 session of "orders-v41\.3" connected \(since /),
      });
    } finally {
      await v41.end();
    }
    expect(await h.drain({ plan, previous: { polls: 0 } })).toMatchObject({ drained: true });
  });

  it('the synthesized state machine hands the recorded old release from "Record old release" to the drain check', async () => {
    const synthesized = synthesizeStateMachine({
      migrationsDirectory: DEMO_MIGRATIONS,
      drainSource: DrainSourceProp.ecsServices([{ cluster: CLUSTER, serviceName: 'orders-api' }]),
    });
    serviceRuns([deployment('PRIMARY', td(41))], [td(41), td(41)]);
    // A database of its own: the tests above leave the demo table expanded.
    const fresh = await createTestDatabase();
    await seedDemoDatabase(fresh.client, 200);
    const deps = { sql: async () => fresh.client, catalog: once(() => loadCatalog(DEMO_MIGRATIONS)) };
    const drainFunction = createDrainTask({ sql: deps.sql, ecs: () => ecs, drainSource: ECS_SOURCE, drainTimeoutSeconds: 600 });
    const functions: Record<string, (event: unknown) => Promise<unknown>> = {
      start: createStartTask({ ...deps, settingsDefaults: { batchPauseMs: 0 }, drainSource: ECS_SOURCE }),
      expand: createExpandTask(deps),
      migrate: createMigrateTask(deps),
      // By the first drain poll the new release was deployed, failed, and ECS rolled back to orders-api:41.
      drain: async (event) => {
        if ((event as { request?: string }).request === undefined) {
          serviceRuns([deployment('PRIMARY', td(41)), deployment('INACTIVE', td(42), 'FAILED')], [td(41)]);
        }
        return drainFunction(event);
      },
      contract: createContractTask(deps),
      finish: createFinishTask(deps),
      recordFailure: createRecordFailureTask(deps),
    };
    // With payloadResponseOnly, a Task's local handler takes the evaluated Parameters and returns the payload.
    const taskResourceLocalHandlers = Object.fromEntries(
      [...synthesized.tasks].map(([state, fn]) => [state, (payload: unknown) => functions[fn]!(payload) as never]),
    );
    const entered: string[] = [];
    let failed: { Error?: string; Cause?: unknown } | undefined;
    const execution = new StateMachine(synthesized.definition).run({} as never, {
      overrides: { taskResourceLocalHandlers },
      context: { Execution: { Id: EXECUTION, Name: 'drain-plan' } } as never,
    });
    const collecting = (async () => {
      for await (const event of execution.eventLogs) {
        if (event.type === 'StateEntered') entered.push(event.state.name);
        if (event.type === 'ExecutionFailed') failed = event;
      }
    })();
    const error = await execution.result.then(() => undefined, (e: unknown) => e);
    await collecting;
    await fresh.drop();
    expect(error).toBeInstanceOf(ExecutionError);
    expect(entered.slice(0, 4)).toEqual(['Start upgrade', 'Old release to record?', 'Record old release', 'Expand schema']);
    expect(entered.at(-1)).toBe('Upgrade failed');
    // The poll knew orders-api:41 as the old release only from the record: a rollback to it fails the drain.
    expect(failed?.Error).toBe('DrainFailedError');
    expect(String(failed?.Cause)).toContain('"Check old release drained" failed with DrainFailedError: Drain check failed for ECS service prod/orders-api (rolled-back)');
  });

  it.each([
    [{ drain: { sessions: '%' } }, SESSIONS, /"drain\.sessions": must be a LIKE pattern/],
    [{ drain: { session: 'x%' } }, SESSIONS, /unknown field "drain\.session"/],
    [{ drain: { sessions: 'orders-v41%' } }, ECS_SOURCE, /"drain\.sessions": this state machine's drain source is ECS services/],
  ])('refuses %j before writing anything', async (input, source, message) => {
    const error = await rejectionOf(handlers(source).start({ executionArn: EXECUTION, input }));
    expect(error.name).toBe('InputError');
    expect((error as TaskFailedError).record.message).toMatch(message);
    expect((await db.pool.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'emc'`)).rowCount).toBe(0);
  });
});
