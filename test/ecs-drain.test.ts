import {
  ClusterNotFoundException,
  DescribeServicesCommand,
  type DescribeServicesCommandInput,
  type DescribeServicesCommandOutput,
  DescribeTasksCommand,
  type DescribeTasksCommandInput,
  type DescribeTasksCommandOutput,
  type Deployment,
  ECSClient,
  ListTasksCommand,
  type ListTasksCommandInput,
  type ListTasksCommandOutput,
  type Service,
  type Task,
} from '@aws-sdk/client-ecs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DrainFailedError, DrainTimeoutError, drainTimeoutMessage } from '../lambdas/core/drain/drain-errors.ts';
import { pinnedTaskDefinitions, type SessionDrainReport } from '../lambdas/core/drain/drain-report.ts';
import { drainSummary } from '../lambdas/core/drain/drain-summary.ts';
import { checkEcsDrain } from '../lambdas/core/drain/ecs-drain.ts';
import { shortName, taskDefinitionKey, type EcsServiceRef } from '../lambdas/core/drain/ecs-names.ts';
import { readOldTaskDefinitions } from '../lambdas/core/drain/ecs-release.ts';
import { EmcError, InputError } from '../lambdas/core/errors.ts';

/**
 * A small fake of the ECS control plane behind aws-sdk-client-mock, answering with the response shapes of the
 * Amazon ECS API reference: DescribeServices (<= 10 services, `failures` with reason MISSING), ListTasks (filters on
 * desiredStatus, default RUNNING, pages of 100 with nextToken) and DescribeTasks (<= 100 tasks).
 */
const REGION = 'eu-west-1';
const ACCOUNT = '123456789012';
const NOW = new Date('2026-11-25T04:00:00Z');

const td = (family: string, revision: number) =>
  `arn:aws:ecs:${REGION}:${ACCOUNT}:task-definition/${family}:${revision}`;
const clusterArn = (cluster: string) => `arn:aws:ecs:${REGION}:${ACCOUNT}:cluster/${cluster}`;
const serviceArn = (cluster: string, service: string) => `arn:aws:ecs:${REGION}:${ACCOUNT}:service/${cluster}/${service}`;

let taskSeq = 0;
function task(
  cluster: string,
  service: string,
  taskDefinitionArn: string,
  options: { lastStatus?: string; desiredStatus?: string; startedAt?: string; createdAt?: string } = {},
): Task {
  taskSeq += 1;
  const id = taskSeq.toString(16).padStart(32, '0');
  const lastStatus = options.lastStatus ?? 'RUNNING';
  const startedAt = options.startedAt ?? (lastStatus === 'RUNNING' ? '2026-11-25T03:30:00Z' : undefined);
  return {
    taskArn: `arn:aws:ecs:${REGION}:${ACCOUNT}:task/${cluster}/${id}`,
    clusterArn: clusterArn(cluster),
    taskDefinitionArn,
    group: `service:${service}`,
    startedBy: 'ecs-svc/1234567890123456789',
    launchType: 'FARGATE',
    lastStatus,
    desiredStatus: options.desiredStatus ?? 'RUNNING',
    createdAt: new Date(options.createdAt ?? '2026-11-25T03:00:00Z'),
    ...(startedAt ? { startedAt: new Date(startedAt) } : {}),
  };
}

function deployment(
  status: 'PRIMARY' | 'ACTIVE' | 'INACTIVE',
  taskDefinition: string,
  options: {
    rolloutState?: 'IN_PROGRESS' | 'COMPLETED' | 'FAILED' | undefined;
    running?: number;
    pending?: number;
    createdAt?: string;
    reason?: string;
  } = {},
): Deployment {
  const rolloutState = 'rolloutState' in options ? options.rolloutState : 'COMPLETED';
  return {
    id: `ecs-svc/${Math.floor(Math.random() * 1e18)}`,
    status,
    taskDefinition,
    desiredCount: 3,
    pendingCount: options.pending ?? 0,
    runningCount: options.running ?? 3,
    failedTasks: 0,
    createdAt: new Date(options.createdAt ?? '2026-11-25T03:20:00Z'),
    updatedAt: new Date('2026-11-25T03:25:00Z'),
    launchType: 'FARGATE',
    ...(rolloutState ? { rolloutState } : {}),
    ...(options.reason ? { rolloutStateReason: options.reason } : {}),
  };
}

interface FakeService {
  readonly cluster: string;
  readonly service: Service;
  readonly tasks: Task[];
}

function fakeService(
  cluster: string,
  name: string,
  deployments: Deployment[],
  tasks: Task[],
  status = 'ACTIVE',
): FakeService {
  return {
    cluster,
    tasks,
    service: {
      serviceArn: serviceArn(cluster, name),
      serviceName: name,
      clusterArn: clusterArn(cluster),
      status,
      desiredCount: 3,
      runningCount: deployments.reduce((n, d) => n + (d.runningCount ?? 0), 0),
      pendingCount: deployments.reduce((n, d) => n + (d.pendingCount ?? 0), 0),
      launchType: 'FARGATE',
      taskDefinition: deployments.find((d) => d.status === 'PRIMARY')?.taskDefinition,
      deployments,
      deploymentController: { type: 'ECS' },
      events: [],
    },
  };
}

const ecsMock = mockClient(ECSClient);
const ecs = new ECSClient({ region: REGION });

function install(world: FakeService[], clusters: string[] = [...new Set(world.map((w) => w.cluster))]): void {
  ecsMock.on(DescribeServicesCommand).callsFake((input: DescribeServicesCommandInput) => {
    const cluster = shortName(input.cluster ?? 'default');
    if (!clusters.includes(cluster)) {
      throw new ClusterNotFoundException({ $metadata: {}, message: 'Cluster not found.' });
    }
    const names = input.services ?? [];
    if (names.length > 10) throw new Error('InvalidParameterException: at most 10 services');
    const out: DescribeServicesCommandOutput = { $metadata: {}, services: [], failures: [] };
    for (const name of names) {
      const found = world.find((w) => w.cluster === cluster && w.service.serviceName === shortName(name));
      if (found) out.services!.push(found.service);
      else out.failures!.push({ arn: serviceArn(cluster, shortName(name)), reason: 'MISSING' });
    }
    return out;
  });
  ecsMock.on(ListTasksCommand).callsFake((input: ListTasksCommandInput) => {
    const desired = input.desiredStatus ?? 'RUNNING';
    const tasks = world
      .filter((w) => w.cluster === shortName(input.cluster ?? 'default') && w.service.serviceName === input.serviceName)
      .flatMap((w) => w.tasks)
      .filter((t) => t.desiredStatus === desired);
    const start = input.nextToken ? Number(input.nextToken) : 0;
    const end = start + (input.maxResults ?? 100);
    const out: ListTasksCommandOutput = {
      $metadata: {},
      taskArns: tasks.slice(start, end).map((t) => t.taskArn!),
      ...(end < tasks.length ? { nextToken: String(end) } : {}),
    };
    return out;
  });
  ecsMock.on(DescribeTasksCommand).callsFake((input: DescribeTasksCommandInput) => {
    const arns = input.tasks ?? [];
    if (arns.length > 100) throw new Error('InvalidParameterException: at most 100 tasks');
    const all = world.filter((w) => w.cluster === shortName(input.cluster ?? 'default')).flatMap((w) => w.tasks);
    const out: DescribeTasksCommandOutput = { $metadata: {}, tasks: [], failures: [] };
    for (const arn of arns) {
      const found = all.find((t) => t.taskArn === arn);
      if (found) out.tasks!.push(found);
      else out.failures!.push({ arn, reason: 'MISSING' });
    }
    return out;
  });
}

function listCalls(): ListTasksCommandInput[] {
  return ecsMock.commandCalls(ListTasksCommand).map((c) => c.args[0].input);
}

beforeEach(() => {
  ecsMock.reset();
  taskSeq = 0;
});
afterEach(() => ecsMock.reset());

describe('taskDefinitionKey', () => {
  it('treats a full ARN and family:revision as the same task definition', () => {
    expect(taskDefinitionKey(td('orders-api', 42))).toBe('orders-api:42');
    expect(taskDefinitionKey('orders-api:42')).toBe('orders-api:42');
    expect(taskDefinitionKey('arn:aws-cn:ecs:cn-north-1:123456789012:task-definition/orders_api:7')).toBe('orders_api:7');
    expect(taskDefinitionKey('orders-api')).toBeUndefined();
    expect(taskDefinitionKey(`arn:aws:ecs:${REGION}:${ACCOUNT}:task/orders/abc`)).toBeUndefined();
  });
});

describe('checkEcsDrain', () => {
  it('blocks while a rolling deployment is in progress and old tasks still run', async () => {
    const old = td('orders-api', 41);
    const next = td('orders-api', 42);
    install([
      fakeService(
        'orders',
        'api',
        [
          deployment('PRIMARY', next, { rolloutState: 'IN_PROGRESS', running: 1, pending: 2, createdAt: '2026-11-25T03:40:00Z' }),
          deployment('ACTIVE', old, { running: 3, createdAt: '2026-11-20T10:00:00Z' }),
        ],
        [
          task('orders', 'api', old, { startedAt: '2026-11-25T03:12:00Z' }),
          task('orders', 'api', old, { startedAt: '2026-11-25T03:10:00Z' }),
          task('orders', 'api', old, { startedAt: '2026-11-25T03:15:00Z' }),
          task('orders', 'api', next, { startedAt: '2026-11-25T03:41:00Z' }),
          task('orders', 'api', next, { lastStatus: 'PENDING' }),
          task('orders', 'api', next, { lastStatus: 'PROVISIONING' }),
        ],
      ),
    ]);

    const report = await checkEcsDrain(ecs, [{ cluster: 'orders', service: 'api' }], NOW);

    expect(report.drained).toBe(false);
    expect(report.source).toBe('ecs');
    expect(report.checkedAt).toBe('2026-11-25T04:00:00Z');
    expect(pinnedTaskDefinitions(report)).toEqual({ 'orders/api': next });
    expect(report.blockers).toEqual([
      { cluster: 'orders', service: 'api', reason: 'rollout-in-progress', taskDefinition: next, tasks: 0, since: '2026-11-25T03:40:00Z' },
      { cluster: 'orders', service: 'api', reason: 'old-tasks', taskDefinition: old, tasks: 3, since: '2026-11-25T03:10:00Z' },
    ]);
    expect(drainSummary(report)).toBe(
      'orders/api: rollout in progress (since 2026-11-25T03:40:00Z), 3 tasks still run orders-api:41 (since 2026-11-25T03:10:00Z); new release orders-api:42',
    );
  });

  it('still blocks on old tasks that are stopping (desired STOPPED, last status RUNNING / STOPPING)', async () => {
    const old = td('orders-api', 41);
    const next = td('orders-api', 42);
    install([
      fakeService(
        'orders',
        'api',
        [deployment('PRIMARY', next), deployment('ACTIVE', old, { running: 1 })],
        [
          task('orders', 'api', next),
          task('orders', 'api', next),
          task('orders', 'api', next),
          task('orders', 'api', old, { desiredStatus: 'STOPPED', lastStatus: 'RUNNING', startedAt: '2026-11-24T08:00:00Z' }),
          task('orders', 'api', old, { desiredStatus: 'STOPPED', lastStatus: 'STOPPING', startedAt: '2026-11-24T09:00:00Z' }),
          // Stopped, or stopped and only releasing its network interface: no longer serving.
          task('orders', 'api', old, { desiredStatus: 'STOPPED', lastStatus: 'DEPROVISIONING', startedAt: '2026-11-23T00:00:00Z' }),
          task('orders', 'api', old, { desiredStatus: 'STOPPED', lastStatus: 'STOPPED', startedAt: '2026-11-22T00:00:00Z' }),
        ],
      ),
    ]);

    const report = await checkEcsDrain(ecs, [{ cluster: 'orders', service: 'api' }], NOW);

    expect(report.drained).toBe(false);
    expect(report.blockers).toEqual([
      { cluster: 'orders', service: 'api', reason: 'old-tasks', taskDefinition: old, tasks: 2, since: '2026-11-24T08:00:00Z' },
    ]);
    expect(drainSummary(report)).toBe(
      'orders/api: 2 tasks still run orders-api:41 (since 2026-11-24T08:00:00Z); new release orders-api:42',
    );
    expect(listCalls().map((c) => c.desiredStatus).sort()).toEqual(['RUNNING', 'STOPPED']);
    expect(listCalls().every((c) => c.cluster === 'orders' && c.serviceName === 'api')).toBe(true);
  });

  it('is drained when every live task runs the new release', async () => {
    const old = td('orders-api', 41);
    const next = td('orders-api', 42);
    install([
      fakeService(
        'orders',
        'api',
        [deployment('PRIMARY', next)],
        [
          task('orders', 'api', next),
          task('orders', 'api', next),
          task('orders', 'api', next),
          task('orders', 'api', old, { desiredStatus: 'STOPPED', lastStatus: 'STOPPED' }),
          task('orders', 'api', old, { desiredStatus: 'STOPPED', lastStatus: 'STOPPED' }),
        ],
      ),
    ]);

    const report = await checkEcsDrain(ecs, [{ cluster: 'orders', service: 'api' }], NOW);

    expect(report).toEqual({
      drained: true,
      source: 'ecs',
      checkedAt: '2026-11-25T04:00:00Z',
      services: [{ cluster: 'orders', service: 'api', newTaskDefinition: next, newTasks: 3 }],
      blockers: [],
    });
    expect(drainSummary(report)).toBe('orders/api: drained; 3 tasks run new release orders-api:42');
  });

  it('checks several services across two clusters, one DescribeServices call per cluster', async () => {
    install([
      fakeService('orders', 'api', [deployment('PRIMARY', td('orders-api', 42))], [task('orders', 'api', td('orders-api', 42))]),
      fakeService('orders', 'worker', [deployment('PRIMARY', td('orders-worker', 9))], [task('orders', 'worker', td('orders-worker', 9))]),
      fakeService(
        'billing',
        'invoices',
        [deployment('PRIMARY', td('invoices', 8)), deployment('ACTIVE', td('invoices', 7), { running: 2 })],
        [
          task('billing', 'invoices', td('invoices', 8)),
          task('billing', 'invoices', td('invoices', 7), { startedAt: '2026-11-01T12:00:00Z' }),
          task('billing', 'invoices', td('invoices', 7), { startedAt: '2026-11-02T12:00:00Z' }),
        ],
      ),
    ]);

    const report = await checkEcsDrain(
      ecs,
      [
        { cluster: 'orders', service: 'api' },
        { cluster: 'billing', service: 'invoices' },
        { cluster: 'orders', service: 'worker' },
      ],
      NOW,
    );

    expect(report.drained).toBe(false);
    expect(report.blockers).toEqual([
      {
        cluster: 'billing',
        service: 'invoices',
        reason: 'old-tasks',
        taskDefinition: td('invoices', 7),
        tasks: 2,
        since: '2026-11-01T12:00:00Z',
      },
    ]);
    expect(drainSummary(report).split('\n')).toEqual([
      'orders/api: drained; 1 task runs new release orders-api:42',
      'billing/invoices: 2 tasks still run invoices:7 (since 2026-11-01T12:00:00Z); new release invoices:8',
      'orders/worker: drained; 1 task runs new release orders-worker:9',
    ]);
    expect(pinnedTaskDefinitions(report)).toEqual({
      'orders/api': td('orders-api', 42),
      'billing/invoices': td('invoices', 8),
      'orders/worker': td('orders-worker', 9),
    });
    const describes = ecsMock.commandCalls(DescribeServicesCommand).map((c) => c.args[0].input);
    expect(describes).toHaveLength(2);
    expect(describes).toContainEqual({ cluster: 'orders', services: ['api', 'worker'] });
    expect(describes).toContainEqual({ cluster: 'billing', services: ['invoices'] });
  });

  it('describes at most 10 services per DescribeServices call', async () => {
    const names = Array.from({ length: 12 }, (_, i) => `svc-${i}`);
    install(names.map((name) => fakeService('orders', name, [deployment('PRIMARY', td(name, 1))], [])));

    const report = await checkEcsDrain(
      ecs,
      names.map((service) => ({ cluster: 'orders', service })),
      NOW,
    );

    expect(report.drained).toBe(true);
    expect(drainSummary(report).split('\n')).toHaveLength(12);
    const sizes = ecsMock.commandCalls(DescribeServicesCommand).map((c) => c.args[0].input.services?.length);
    expect(sizes).toEqual([10, 2]);
  });

  it('pages through ListTasks and describes 250 tasks in chunks of at most 100', async () => {
    const old = td('orders-api', 41);
    const next = td('orders-api', 42);
    const tasks = [
      ...Array.from({ length: 200 }, () => task('orders', 'api', next)),
      ...Array.from({ length: 50 }, (_, i) =>
        task('orders', 'api', old, { startedAt: `2026-11-25T02:${String(i).padStart(2, '0')}:00Z` }),
      ),
    ];
    install([fakeService('orders', 'api', [deployment('PRIMARY', next), deployment('ACTIVE', old, { running: 50 })], tasks)]);

    const report = await checkEcsDrain(ecs, [{ cluster: 'orders', service: 'api' }], NOW);

    expect(report.blockers).toEqual([
      { cluster: 'orders', service: 'api', reason: 'old-tasks', taskDefinition: old, tasks: 50, since: '2026-11-25T02:00:00Z' },
    ]);
    const running = listCalls().filter((c) => c.desiredStatus === 'RUNNING');
    expect(running.map((c) => c.nextToken)).toEqual([undefined, '100', '200']);
    const chunks = ecsMock.commandCalls(DescribeTasksCommand).map((c) => c.args[0].input.tasks ?? []);
    expect(chunks.map((c) => c.length)).toEqual([100, 100, 50]);
    expect(new Set(chunks.flat()).size).toBe(250);
  });

  it('matches an explicit newTaskDefinition given as family:revision against full ARNs', async () => {
    const next = td('orders-api', 42);
    install([
      fakeService('orders', 'api', [deployment('PRIMARY', next)], [task('orders', 'api', next), task('orders', 'api', next)]),
      fakeService(
        'orders',
        'worker',
        [deployment('PRIMARY', td('orders-worker', 9)), deployment('ACTIVE', td('orders-worker', 8), { running: 1 })],
        [task('orders', 'worker', td('orders-worker', 9)), task('orders', 'worker', td('orders-worker', 8))],
      ),
    ]);

    const report = await checkEcsDrain(
      ecs,
      [
        { cluster: 'orders', service: 'api', newTaskDefinition: 'orders-api:42' },
        { cluster: 'orders', service: 'worker', newTaskDefinition: `arn:aws:ecs:${REGION}:${ACCOUNT}:task-definition/orders-worker:9` },
      ],
      NOW,
    );

    expect(pinnedTaskDefinitions(report)).toEqual({ 'orders/api': next, 'orders/worker': td('orders-worker', 9) });
    expect(report.blockers.map((b) => [b.service, b.taskDefinition, b.tasks])).toEqual([
      ['worker', td('orders-worker', 8), 1],
    ]);
    expect(drainSummary(report).split('\n')[0]).toBe('orders/api: drained; 2 tasks run new release orders-api:42');
  });

  it('accepts cluster and service ARNs and reports them under their short names', async () => {
    const next = td('orders-api', 42);
    install([
      fakeService(
        'orders',
        'api',
        [deployment('PRIMARY', next), deployment('ACTIVE', td('orders-api', 41), { running: 1 })],
        [task('orders', 'api', next), task('orders', 'api', td('orders-api', 41), { startedAt: '2026-11-25T03:10:00Z' })],
      ),
    ]);

    const report = await checkEcsDrain(ecs, [{ cluster: clusterArn('orders'), service: serviceArn('orders', 'api') }], NOW);

    expect(pinnedTaskDefinitions(report)).toEqual({ 'orders/api': next });
    expect(report.blockers).toEqual([
      {
        cluster: clusterArn('orders'),
        service: serviceArn('orders', 'api'),
        reason: 'old-tasks',
        taskDefinition: td('orders-api', 41),
        tasks: 1,
        since: '2026-11-25T03:10:00Z',
      },
    ]);
    expect(drainSummary(report)).toBe(
      'orders/api: 1 task still runs orders-api:41 (since 2026-11-25T03:10:00Z); new release orders-api:42',
    );
    expect(listCalls().every((c) => c.serviceName === 'api' && c.cluster === clusterArn('orders'))).toBe(true);
    expect(drainTimeoutMessage(report, 60)).toContain('orders/api: 1 task still runs orders-api:41');
  });

  it('does not treat a newer PRIMARY revision as the explicit new release', async () => {
    install([
      fakeService(
        'orders',
        'api',
        [deployment('PRIMARY', td('orders-api', 43)), deployment('ACTIVE', td('orders-api', 42), { running: 1 })],
        [task('orders', 'api', td('orders-api', 43)), task('orders', 'api', td('orders-api', 42))],
      ),
    ]);

    const report = await checkEcsDrain(ecs, [{ cluster: 'orders', service: 'api', newTaskDefinition: 'orders-api:42' }], NOW);

    expect(report.drained).toBe(false);
    expect(report.blockers.map((b) => b.taskDefinition)).toEqual([td('orders-api', 43)]);
  });

  it('does not wait on the rollout when ECS reports no rolloutState and only one deployment remains', async () => {
    const next = td('orders-api', 42);
    install([
      fakeService('orders', 'api', [deployment('PRIMARY', next, { rolloutState: undefined })], [task('orders', 'api', next)]),
    ]);

    const report = await checkEcsDrain(ecs, [{ cluster: 'orders', service: 'api' }], NOW);

    expect(report.drained).toBe(true);
  });

  it('fails with DrainFailedError when the deployment of the new release failed', async () => {
    const next = td('orders-api', 42);
    install([
      fakeService(
        'orders',
        'api',
        [deployment('PRIMARY', next, { rolloutState: 'FAILED', reason: 'ECS deployment circuit breaker: tasks failed to start.' })],
        [task('orders', 'api', td('orders-api', 41))],
      ),
    ]);

    const error = await checkEcsDrain(ecs, [{ cluster: 'orders', service: 'api' }], NOW).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(DrainFailedError);
    expect(error).toBeInstanceOf(EmcError);
    const failed = error as DrainFailedError;
    expect(failed.name).toBe('DrainFailedError');
    expect(failed.transient).toBe(false);
    expect(failed.reason).toBe('rollout-failed');
    expect(failed.message).toContain('orders/api');
    expect(failed.message).toContain('orders-api:42');
    expect(failed.message).toContain('circuit breaker');
    expect(failed.nextAction).toMatch(/redeploy/);
    expect(ecsMock.commandCalls(ListTasksCommand)).toHaveLength(0);
  });

  it('fails while the circuit breaker rolls back, instead of taking the rollback for the new release', async () => {
    install([
      fakeService(
        'orders',
        'api',
        [
          deployment('PRIMARY', td('orders-api', 41), { rolloutState: 'IN_PROGRESS' }),
          deployment('ACTIVE', td('orders-api', 42), { rolloutState: 'FAILED', running: 0 }),
        ],
        [task('orders', 'api', td('orders-api', 41))],
      ),
    ]);

    await expect(checkEcsDrain(ecs, [{ cluster: 'orders', service: 'api' }], NOW)).rejects.toMatchObject({
      name: 'DrainFailedError',
      reason: 'rollout-failed',
    });
  });

  it('fails when no deployment runs the explicit new release any more (rolled back)', async () => {
    install([
      fakeService('orders', 'api', [deployment('PRIMARY', td('orders-api', 41))], [task('orders', 'api', td('orders-api', 41))]),
    ]);

    const error = await checkEcsDrain(ecs, [{ cluster: 'orders', service: 'api', newTaskDefinition: 'orders-api:42' }], NOW).catch(
      (e: unknown) => e,
    );

    expect(error).toBeInstanceOf(DrainFailedError);
    expect((error as DrainFailedError).reason).toBe('rolled-back');
    expect((error as Error).message).toContain('orders-api:42');
    expect((error as Error).message).toContain('PRIMARY orders-api:41');
  });

  it('fails with DrainFailedError naming a missing service', async () => {
    install([fakeService('orders', 'api', [deployment('PRIMARY', td('orders-api', 42))], [])]);

    const error = await checkEcsDrain(
      ecs,
      [
        { cluster: 'orders', service: 'api' },
        { cluster: 'orders', service: 'ghost' },
      ],
      NOW,
    ).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(DrainFailedError);
    const failed = error as DrainFailedError;
    expect(failed.reason).toBe('missing');
    expect(failed.cluster).toBe('orders');
    expect(failed.service).toBe('ghost');
    expect(failed.message).toContain('orders/ghost');
    expect(failed.message).toContain('MISSING');
    expect(failed.transient).toBe(false);
    expect(ecsMock.commandCalls(ListTasksCommand)).toHaveLength(0);
  });

  it('fails with DrainFailedError for a deleted (DRAINING / INACTIVE) service', async () => {
    install([fakeService('orders', 'api', [deployment('PRIMARY', td('orders-api', 42))], [], 'INACTIVE')]);

    await expect(checkEcsDrain(ecs, [{ cluster: 'orders', service: 'api' }], NOW)).rejects.toMatchObject({
      name: 'DrainFailedError',
      reason: 'inactive',
      message: expect.stringContaining('INACTIVE'),
    });
  });

  it('fails with DrainFailedError when the cluster does not exist', async () => {
    install([fakeService('orders', 'api', [deployment('PRIMARY', td('orders-api', 42))], [])]);

    await expect(checkEcsDrain(ecs, [{ cluster: 'nowhere', service: 'api' }], NOW)).rejects.toMatchObject({
      name: 'DrainFailedError',
      reason: 'missing',
      message: expect.stringContaining('cluster nowhere does not exist'),
    });
  });

  it('rejects a newTaskDefinition that names no single revision', async () => {
    install([fakeService('orders', 'api', [deployment('PRIMARY', td('orders-api', 42))], [])]);

    await expect(
      checkEcsDrain(ecs, [{ cluster: 'orders', service: 'api', newTaskDefinition: 'orders-api' }], NOW),
    ).rejects.toBeInstanceOf(InputError);
  });
});

describe('the old release recorded at plan time (readOldTaskDefinitions)', () => {
  const old = td('orders-api', 41);
  const next = td('orders-api', 42);
  const api = { cluster: 'orders', service: 'api' };

  it('records the task definitions of the PRIMARY and ACTIVE deployments, less the named new release', async () => {
    install([
      fakeService(
        'orders',
        'api',
        [
          deployment('PRIMARY', td('orders-api', 40), { rolloutState: 'IN_PROGRESS' }),
          deployment('ACTIVE', td('orders-api', 39), { rolloutState: 'COMPLETED' }),
          deployment('INACTIVE', td('orders-api', 38), { running: 0 }),
        ],
        [],
      ),
      fakeService('orders', 'worker', [deployment('PRIMARY', old)], []),
    ]);

    expect(
      await readOldTaskDefinitions(ecs, [api, { cluster: 'orders', service: 'worker', newTaskDefinition: 'orders-api:41' }]),
    ).toEqual({ 'orders/api': [td('orders-api', 40), td('orders-api', 39)], 'orders/worker': [] });
  });

  it('fails a service the circuit breaker rolled back to the old release, where it would pass as drained', async () => {
    // API_DeploymentCircuitBreaker: "If rollback is on, when a service deployment fails, the service is rolled back
    // to the last deployment that completed successfully." API_Deployment: INACTIVE is "a deployment that has been
    // completely replaced". After the rollback the old release is the COMPLETED PRIMARY deployment again.
    install([fakeService('orders', 'api', [deployment('PRIMARY', old)], [task('orders', 'api', old)])]);
    const recorded = await readOldTaskDefinitions(ecs, [api]);
    install([
      fakeService(
        'orders',
        'api',
        [deployment('PRIMARY', old, { createdAt: '2026-11-25T03:40:00Z' }), deployment('INACTIVE', next, { rolloutState: 'FAILED', running: 0 })],
        [task('orders', 'api', old), task('orders', 'api', next, { lastStatus: 'STOPPED', desiredStatus: 'STOPPED' })],
      ),
    ]);

    // Without the record, the rollback is taken for the new release: this is the hole.
    expect((await checkEcsDrain(ecs, [api], NOW)).drained).toBe(true);
    const error = await checkEcsDrain(ecs, [{ ...api, oldTaskDefinitions: recorded['orders/api'] }], NOW).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DrainFailedError);
    expect(error).toMatchObject({ reason: 'rolled-back', cluster: 'orders', service: 'api' });
    expect((error as Error).message).toContain(
      'the service runs orders-api:41 again, which the old release ran when this upgrade was planned (deployments: PRIMARY orders-api:41 COMPLETED)',
    );
    expect((error as DrainFailedError).nextAction).toMatch(/contract was not run/);
  });

  it('is drained once the new release completed and no task of the old one is left', async () => {
    const oldTaskDefinitions = [old];
    install([
      fakeService(
        'orders',
        'api',
        [deployment('PRIMARY', next), deployment('ACTIVE', old, { running: 1 })],
        [task('orders', 'api', next), task('orders', 'api', old, { desiredStatus: 'STOPPED', lastStatus: 'DEACTIVATING' })],
      ),
    ]);
    const waiting = await checkEcsDrain(ecs, [{ ...api, oldTaskDefinitions }], NOW);
    expect(waiting.drained).toBe(false);
    expect(drainSummary(waiting)).toBe('orders/api: 1 task still runs orders-api:41 (since 2026-11-25T03:00:00Z); new release orders-api:42');

    install([fakeService('orders', 'api', [deployment('PRIMARY', next)], [task('orders', 'api', next)])]);
    const drained = await checkEcsDrain(ecs, [{ ...api, oldTaskDefinitions }], NOW);
    expect(drained.drained).toBe(true);
    expect(pinnedTaskDefinitions(drained)).toEqual({ 'orders/api': next });
  });

  it('fails a service whose pinned new release is one the old release ran', async () => {
    install([fakeService('orders', 'api', [deployment('PRIMARY', old)], [task('orders', 'api', old)])]);
    await expect(
      checkEcsDrain(ecs, [{ ...api, newTaskDefinition: 'orders-api:41', oldTaskDefinitions: [old] }], NOW),
    ).rejects.toMatchObject({ name: 'DrainFailedError', reason: 'rolled-back' });
  });
});

describe('DrainTimeoutError', () => {
  it('names what still blocks at the last check', async () => {
    install([
      fakeService('orders', 'api', [deployment('PRIMARY', td('orders-api', 42))], [task('orders', 'api', td('orders-api', 42))]),
      fakeService(
        'billing',
        'invoices',
        [deployment('PRIMARY', td('invoices', 8)), deployment('ACTIVE', td('invoices', 7), { running: 2 })],
        [
          task('billing', 'invoices', td('invoices', 7), { startedAt: '2026-11-01T12:00:00Z' }),
          task('billing', 'invoices', td('invoices', 7), { startedAt: '2026-11-02T12:00:00Z' }),
        ],
      ),
    ]);
    const refs: EcsServiceRef[] = [
      { cluster: 'orders', service: 'api' },
      { cluster: 'billing', service: 'invoices' },
    ];
    const report = await checkEcsDrain(ecs, refs, NOW);

    const error = new DrainTimeoutError(report, 1800);

    expect(error).toBeInstanceOf(EmcError);
    expect(error.name).toBe('DrainTimeoutError');
    expect(error.transient).toBe(false);
    expect(error.nextAction).toMatch(/contract was not run/);
    expect(error.report).toBe(report);
    expect(error.timeoutSeconds).toBe(1800);
    expect(error.message).toBe(drainTimeoutMessage(report, 1800));
    expect(error.message).toContain('1800 s');
    expect(error.message).toContain(
      'billing/invoices: 2 tasks still run invoices:7 (since 2026-11-01T12:00:00Z); new release invoices:8',
    );
    expect(error.message).not.toContain('orders/api');
  });

  it('renders a report from another drain source', () => {
    const report: SessionDrainReport = {
      drained: false,
      source: 'database-sessions',
      checkedAt: '2026-11-25T04:00:00Z',
      applicationNamePattern: 'orders-api/v41%',
      blockers: [{ applicationName: 'orders-api/v41', role: 'app', sessions: 3, since: '2026-11-25T03:10:00Z', startTimesHidden: false }],
      startTimesHidden: false,
    };

    const error = new DrainTimeoutError(report, 600);

    expect(error.message).toBe(
      'The old release did not drain within 600 s (last checked 2026-11-25T04:00:00Z); still blocking:\n' +
        '  - 3 sessions of "orders-api/v41" connected (since 2026-11-25T03:10:00Z)',
    );
  });
});
