import { DescribeExecutionCommand, ExecutionDoesNotExist, ListExecutionsCommand, SFNClient, StopExecutionCommand, ValidationException } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { WhyReport } from '../bin/cli/why.ts';
import { startDataApiEmulator, type DataApiEmulator } from '../bin/local/data-api-emulator/index.ts';
import { acquireLease } from '../lambdas/core/state/lease.ts';
import { ensureStateSchema } from '../lambdas/core/state/schema.ts';
import { LeaseHeldError } from '../lambdas/core/errors.ts';
import { STATE_NAMES } from '../lambdas/core/workflow/state-names.ts';
import { runEmc } from './support/cli-harness.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { failureReport, HistoryBuilder, serveExecution, STATE_MACHINE_ARN } from './support/sfn-history.ts';

const sfn = mockClient(SFNClient);
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await ensureStateSchema(db.client);
});
afterAll(async () => {
  await db.drop();
});
beforeEach(async () => {
  sfn.reset();
  await db.pool.query('DELETE FROM emc.lease; DELETE FROM emc.history');
});

const ARN = `${STATE_MACHINE_ARN.replace(':stateMachine:', ':execution:')}:emc-bexar-full-0a1b2c3d`;
const HAND_RUN = 'emc-cli:migrate:alice@laptop:4242:2025-06-01T12:00:00.000Z';
const holdLease = (owner: string) => acquireLease(db.client, owner, 900);
const leaseOwner = async () => (await db.pool.query<{ owner: string }>('SELECT owner FROM emc.lease')).rows[0]?.owner ?? null;
const emc = (...args: string[]) => runEmc([...args, '--database-url', db.url]);

/**
 * Step Functions API reference, DescribeExecution, Response Elements: executionArn, stateMachineArn, startDate and
 * status are required; status is "The current status of the execution", one of RUNNING | SUCCEEDED | FAILED |
 * TIMED_OUT | ABORTED | PENDING_REDRIVE.
 */
const describing = (...statuses: string[]) => {
  const mock = sfn.on(DescribeExecutionCommand, { executionArn: ARN });
  for (const status of statuses) {
    mock.resolvesOnce({ executionArn: ARN, stateMachineArn: STATE_MACHINE_ARN, status: status as 'RUNNING', startDate: new Date() });
  }
  return mock;
};

describe('emc unlock', () => {
  it('says so when no lease is held', async () => {
    const run = await emc('unlock');
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toBe('No upgrade lease is held: nothing to release.\n');
    expect(sfn.calls()).toHaveLength(0);
  });

  it.each(['RUNNING', 'PENDING_REDRIVE'])('refuses while the holder execution is %s, even with --force', async (status) => {
    await holdLease(ARN);
    describing(status, status);
    for (const args of [[], ['--force']]) {
      const run = await emc('unlock', ...args);
      expect(run.exitCode).toBe(1);
      expect(run.stderr).toContain(`emc: The upgrade lease is held by execution ${ARN}, which is ${status}: it was not released.`);
      expect(run.stderr).toContain(`Next: Wait for it to end (emc wait ${ARN}), or stop it and release its lease with emc abort ${ARN}.`);
    }
    expect(await leaseOwner()).toBe(ARN);
  });

  it('releases the lease of an execution that has ended', async () => {
    await holdLease(ARN);
    describing('ABORTED');
    const run = await emc('unlock');
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toBe(`Released the upgrade lease of ${ARN} (execution ABORTED).\n`);
    expect(sfn.commandCalls(DescribeExecutionCommand)[0]!.args[0].input).toEqual({ executionArn: ARN });
    expect(await leaseOwner()).toBeNull();
  });

  it('releases the lease of a hand run, or of an execution Step Functions does not find, only with --force and a warning', async () => {
    await holdLease(HAND_RUN);
    const refused = await emc('unlock');
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toContain(`the holder ${HAND_RUN} is not a Step Functions execution`);
    expect(refused.stderr).toContain('Next: Make sure that run has ended (its process is gone), then release the lease with emc unlock --force.');
    expect(await leaseOwner()).toBe(HAND_RUN);
    const forced = await emc('unlock', '--force');
    expect(forced.exitCode).toBe(0);
    expect(forced.stderr).toContain('Warning (--force): the holder');
    expect(forced.stdout).toBe(`Released the upgrade lease of ${HAND_RUN}.\n`);
    expect(await leaseOwner()).toBeNull();
    expect(sfn.calls()).toHaveLength(0);

    await holdLease(ARN);
    // DescribeExecution errors: "ExecutionDoesNotExist: The specified execution does not exist. HTTP Status Code: 400".
    sfn.on(DescribeExecutionCommand).rejects(new ExecutionDoesNotExist({ message: `Execution Does Not Exist: '${ARN}'`, $metadata: {} }));
    expect((await emc('unlock')).exitCode).toBe(2);
    expect(await leaseOwner()).toBe(ARN);
    const gone = await emc('unlock', '--force');
    expect(gone.exitCode).toBe(0);
    expect(gone.stderr).toContain(`Warning (--force): Step Functions does not find execution ${ARN}`);
    expect(await leaseOwner()).toBeNull();
  });
});

describe('emc abort', () => {
  const history = async () => (await db.pool.query<{ run_id: string; step_id: string; outcome: string; error: string }>('SELECT run_id, step_id, outcome, error FROM emc.history')).rows;

  it('stops a running execution, releases its lease and records the abort', async () => {
    await holdLease(ARN);
    describing('RUNNING');
    // StopExecution: "Response Syntax {"stopDate": number}"; on success the service sends back HTTP 200.
    sfn.on(StopExecutionCommand).resolves({ stopDate: new Date() });
    const run = await emc('abort', ARN);
    expect(run.stderr).toBe('');
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain(`Stopped ${ARN} (it was RUNNING).\nReleased its upgrade lease.\nThe abort is recorded in emc.history.\n`);
    expect(sfn.commandCalls(StopExecutionCommand)[0]!.args[0].input).toMatchObject({ executionArn: ARN, error: 'EmcAborted' });
    expect(await leaseOwner()).toBeNull();
    expect(await history()).toEqual([
      { run_id: ARN, step_id: '(run)', outcome: 'interrupted', error: expect.stringMatching(/^aborted with emc abort by \S+@\S+ \(the execution was RUNNING\)$/) },
    ]);
  });

  it('does not stop an execution that has ended; releases the lease it left', async () => {
    await holdLease(ARN);
    describing('TIMED_OUT');
    const run = await emc('abort', ARN, '--json');
    expect(run.exitCode).toBe(0);
    expect(run.json()).toEqual({ executionArn: ARN, statusBefore: 'TIMED_OUT', stopped: false, leaseReleased: true, leaseHolder: null });
    expect(sfn.commandCalls(StopExecutionCommand)).toHaveLength(0);
    expect(await history()).toEqual([]);
  });

  it('copes with either answer of StopExecution for an execution that ended meanwhile', async () => {
    // What StopExecution answers for an execution that has just ended is not documented: an error here, and the
    // next DescribeExecution shows it ended, so there is nothing left to stop.
    await holdLease('someone-else');
    describing('RUNNING', 'SUCCEEDED');
    sfn.on(StopExecutionCommand).rejects(new ValidationException({ message: 'Execution is not running', $metadata: {} }));
    const run = await emc('abort', ARN, '--json');
    expect(run.exitCode).toBe(0);
    expect(run.json()).toEqual({ executionArn: ARN, statusBefore: 'RUNNING', stopped: false, leaseReleased: false, leaseHolder: 'someone-else' });
    expect(await leaseOwner()).toBe('someone-else');

    // The same error while it still runs is a failure: nothing released.
    sfn.reset();
    await db.pool.query('DELETE FROM emc.lease');
    await holdLease(ARN);
    describing('RUNNING', 'RUNNING');
    sfn.on(StopExecutionCommand).rejects(new ValidationException({ message: 'Execution is not running', $metadata: {} }));
    const failed = await emc('abort', ARN);
    expect(failed.exitCode).toBe(1);
    expect(failed.stderr).toContain('emc: Execution is not running');
    expect(await leaseOwner()).toBe(ARN);
  });
});

describe('emc abort and emc unlock over the RDS Data API (the emulator)', () => {
  const dataApi = ['--cluster-arn', 'arn:aws:rds:us-east-1:123456789012:cluster:shop', '--secret-arn', 'arn:aws:secretsmanager:us-east-1:123456789012:secret:shop-AbCdEf'];
  let emulator: DataApiEmulator;
  beforeAll(async () => {
    emulator = await startDataApiEmulator({ postgresUrl: db.url });
  });
  afterAll(async () => {
    await emulator.stop();
  });
  beforeEach(() => {
    for (const [name, value] of Object.entries(emulator.environment)) vi.stubEnv(name, value);
  });
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('aborts a running execution: its lease released and the abort recorded through the Data API', async () => {
    await holdLease(ARN);
    describing('RUNNING');
    sfn.on(StopExecutionCommand).resolves({ stopDate: new Date() });
    const before = emulator.calls.ExecuteStatement;
    const run = await runEmc(['abort', ARN, ...dataApi, '--database', db.name, '--json']);
    expect(run.stderr).toBe('');
    expect(run.exitCode).toBe(0);
    expect(run.json()).toEqual({ executionArn: ARN, statusBefore: 'RUNNING', stopped: true, leaseReleased: true, leaseHolder: null });
    expect(emulator.calls.ExecuteStatement).toBeGreaterThan(before);
    expect(await leaseOwner()).toBeNull();
    expect((await db.pool.query('SELECT run_id, outcome FROM emc.history')).rows).toEqual([{ run_id: ARN, outcome: 'interrupted' }]);
  });

  it('unlocks the lease of an execution that has ended, and keeps that of one that runs', async () => {
    await holdLease(ARN);
    describing('RUNNING', 'FAILED');
    const refused = await runEmc(['unlock', ...dataApi, '--database', db.name]);
    expect(refused.exitCode).toBe(1);
    expect(await leaseOwner()).toBe(ARN);
    const run = await runEmc(['unlock', ...dataApi, '--database', db.name]);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toBe(`Released the upgrade lease of ${ARN} (execution FAILED).\n`);
    expect(await leaseOwner()).toBeNull();
  });
});

describe('emc why without an execution', () => {
  it('explains the latest FAILED execution of the state machine', async () => {
    // Step Functions API reference, ListExecutions: "Results are sorted by time, with the most recent execution first";
    // statusFilter: "If specified, only list the executions whose current execution status matches the given filter".
    // An ExecutionListItem requires executionArn, stateMachineArn, name, status and startDate.
    sfn.on(ListExecutionsCommand).resolves({
      executions: [{ executionArn: ARN, stateMachineArn: STATE_MACHINE_ARN, name: 'emc-bexar-full-0a1b2c3d', status: 'FAILED', startDate: new Date() }],
    });
    const held = new LeaseHeldError('arn:other', new Date('2025-06-01T11:00:00.000Z'));
    const failure = failureReport('start', held, { version: 'bexar_expand01', leaseReleased: false });
    const cause = failure.cause;
    const events = new HistoryBuilder().started({}).failingTask('start', held).task('recordFailure', failure).failed('LeaseHeldError', cause).events;
    serveExecution(sfn, { executionArn: ARN, name: 'emc-bexar-full-0a1b2c3d', input: {}, stages: [{ status: 'FAILED', events, error: 'LeaseHeldError', cause }] });

    const run = await runEmc(['why', '--state-machine-arn', STATE_MACHINE_ARN, '--json']);
    expect(run.exitCode).toBe(0);
    expect(sfn.commandCalls(ListExecutionsCommand)[0]!.args[0].input).toEqual({ stateMachineArn: STATE_MACHINE_ARN, statusFilter: 'FAILED', maxResults: 1 });
    expect(run.json<WhyReport>()).toMatchObject({ executionArn: ARN, failed: true, failedState: STATE_NAMES.start, error: 'LeaseHeldError', version: 'bexar_expand01' });
  });

  it('says so when the state machine has no failed execution', async () => {
    sfn.on(ListExecutionsCommand).resolves({ executions: [] });
    const run = await runEmc(['why', '--state-machine-arn', STATE_MACHINE_ARN]);
    expect(run.exitCode).toBe(6);
    expect(run.stderr).toContain(`emc: State machine ${STATE_MACHINE_ARN} has no failed execution.`);
  });
});
