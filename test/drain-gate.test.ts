import { DescribeServicesCommand, DescribeTasksCommand, ECSClient, ListTasksCommand } from '@aws-sdk/client-ecs';
import { mockClient } from 'aws-sdk-client-mock';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DrainTimeoutError } from '../lambdas/core/drain/drain-errors.ts';
import { pollDrainGate } from '../lambdas/core/drain/drain-gate.ts';
import { parseTaskResult } from '../lambdas/core/workflow/task-contract.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

/** The drain gate's loop state across polls, on both sources: database sessions (real PostgreSQL) and ECS. */
describe('drain gate, database-session source', () => {
  let db: TestDatabase;
  const oldInstances: pg.Client[] = [];
  const source = { kind: 'database-sessions', applicationNamePattern: 'orders-api/v41%' } as const;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    await Promise.all(oldInstances.splice(0).map((c) => c.end()));
  });
  afterAll(async () => {
    await db.drop();
  });

  async function connectInstance(applicationName: string): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: db.url, application_name: applicationName });
    await client.connect();
    oldInstances.push(client);
    return client;
  }

  const poll = (previous?: { startedAt: string; polls: number }, now = new Date(), timeoutSeconds = 600) =>
    pollDrainGate(
      { sql: db.client },
      {
        source,
        timeoutSeconds,
        requestedTaskDefinitions: {},
        previous: previous && { ...previous, newTaskDefinitions: {} },
        now,
      },
    );

  it('waits while an old-release session is connected and opens once it is gone', async () => {
    const old = await connectInstance('orders-api/v41 worker-1');
    await connectInstance('orders-api/v42 worker-1'); // the new release: never blocks

    const first = await poll();
    expect(first.drained).toBe(false);
    expect(first.polls).toBe(1);
    expect(first.summary).toMatch(/1 session of "orders-api\/v41 worker-1" connected \(since \d{4}-/);
    expect(first.summary).not.toContain('v42');

    await old.end();
    oldInstances.splice(oldInstances.indexOf(old), 1);
    const second = await poll({ startedAt: first.startedAt, polls: first.polls });
    expect(second).toMatchObject({ drained: true, polls: 2, startedAt: first.startedAt });
    expect(second.summary).toContain("no session with application_name LIKE 'orders-api/v41%' is connected");
  });

  it('fails with DrainTimeoutError naming what still blocks once the timeout has passed since the first poll', async () => {
    await connectInstance('orders-api/v41 worker-7');
    const first = await poll(undefined, new Date('2026-11-25T04:00:00Z'), 300);
    expect(first.drained).toBe(false);

    const late = poll({ startedAt: first.startedAt, polls: 1 }, new Date('2026-11-25T04:05:01Z'), 300);
    await expect(late).rejects.toBeInstanceOf(DrainTimeoutError);
    await expect(late).rejects.toThrow(/did not drain within 300 s[\s\S]*orders-api\/v41 worker-7/);
  });

  it('returns a state the task contract parses back from the execution history, report included, and refuses a changed report', async () => {
    await connectInstance('orders-api/v41 worker-3');
    const state = await poll();
    // What the state machine keeps at $.drain is JSON: an undefined field is gone when the next task reads it.
    const stored: unknown = JSON.parse(JSON.stringify(state));
    const parsed = parseTaskResult('drain', stored);
    expect(parsed).toEqual({ ok: true, value: stored });
    expect(state.report).toMatchObject({ source: 'database-sessions', blockers: [{ applicationName: 'orders-api/v41 worker-3', sessions: 1 }] });

    const report = structuredClone(stored) as { report: { blockers: { sessions: unknown }[]; source: unknown } };
    report.report.blockers[0]!.sessions = 'one';
    expect(parseTaskResult('drain', report)).toMatchObject({ ok: false, problems: expect.stringContaining('"report.blockers.0.sessions"') });
    report.report.source = 'kubernetes';
    expect(parseTaskResult('drain', report)).toMatchObject({ ok: false, problems: expect.stringContaining('"report.source"') });
  });

  it('opens at once when nothing of the old release is connected, timeout or not', async () => {
    const state = await poll({ startedAt: '2026-11-25T00:00:00Z', polls: 40 }, new Date('2026-11-25T04:00:00Z'), 60);
    expect(state.drained).toBe(true);
  });
});

describe('drain gate, ECS source', () => {
  const ecs = mockClient(ECSClient);
  afterEach(() => ecs.reset());
  const cluster = 'arn:aws:ecs:us-east-1:123456789012:cluster/prod';
  const td = (revision: number) => `arn:aws:ecs:us-east-1:123456789012:task-definition/api:${revision}`;

  /** A service whose PRIMARY deployment runs `primary` with all of its tasks on `running`. */
  function service(primary: number, running: number) {
    ecs.on(DescribeServicesCommand).resolves({
      services: [
        {
          serviceArn: 'arn:aws:ecs:us-east-1:123456789012:service/prod/api',
          serviceName: 'api',
          clusterArn: cluster,
          status: 'ACTIVE',
          taskDefinition: td(primary),
          deployments: [
            { id: 'ecs-svc/1', status: 'PRIMARY', taskDefinition: td(primary), runningCount: 1, pendingCount: 0, desiredCount: 1, rolloutState: 'COMPLETED', createdAt: new Date('2026-11-25T03:00:00Z') },
          ],
        },
      ],
      failures: [],
    });
    ecs.on(ListTasksCommand, { desiredStatus: 'RUNNING' }).resolves({ taskArns: ['arn:aws:ecs:us-east-1:123456789012:task/prod/0001'] });
    ecs.on(ListTasksCommand, { desiredStatus: 'STOPPED' }).resolves({ taskArns: [] });
    ecs.on(DescribeTasksCommand).resolves({
      tasks: [
        {
          taskArn: 'arn:aws:ecs:us-east-1:123456789012:task/prod/0001',
          clusterArn: cluster,
          taskDefinitionArn: td(running),
          lastStatus: 'RUNNING',
          desiredStatus: 'RUNNING',
          startedAt: new Date('2026-11-25T03:01:00Z'),
        },
      ],
      failures: [],
    });
  }

  const poll = (previous: { startedAt: string; polls: number; newTaskDefinitions: Record<string, string> } | undefined) =>
    pollDrainGate(
      { sql: undefined as never, ecs: ecs as unknown as ECSClient },
      {
        source: { kind: 'ecs', services: [{ cluster, service: 'api' }] },
        timeoutSeconds: 3600,
        requestedTaskDefinitions: {},
        previous,
        now: new Date('2026-11-25T04:00:00Z'),
      },
    );

  it('pins the new task definition at the first poll, so a later rollback is not taken for a drain', async () => {
    service(42, 42);
    const first = await poll(undefined);
    expect(first.drained).toBe(true);
    expect(first.newTaskDefinitions).toEqual({ 'prod/api': td(42) });

    // The deployment is rolled back to revision 41: PRIMARY runs the old release again.
    ecs.reset();
    service(41, 41);
    await expect(poll({ startedAt: first.startedAt, polls: 1, newTaskDefinitions: first.newTaskDefinitions })).rejects.toThrow(
      /prod\/api \(rolled-back\)/,
    );
  });

  it('takes the new release named in the execution input by service name', async () => {
    service(42, 41);
    const state = await pollDrainGate(
      { sql: undefined as never, ecs: ecs as unknown as ECSClient },
      {
        source: { kind: 'ecs', services: [{ cluster, service: 'api' }] },
        timeoutSeconds: 3600,
        requestedTaskDefinitions: { api: 'api:42' },
        previous: undefined,
        now: new Date('2026-11-25T04:00:00Z'),
      },
    );
    // The input names revision 42 (family:revision, by service name); a task still runs 41.
    expect(state.drained).toBe(false);
    expect(state.newTaskDefinitions).toEqual({ 'prod/api': td(42) });
    expect(state.summary).toMatch(/prod\/api: 1 task still runs? api:41/);
  });
});
