import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  InvalidArn,
  ListExecutionsCommand,
  ListStateMachinesCommand,
  SFNClient,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { phaseOfState } from '../bin/cli/execution-view.ts';
import type { ExecutionHistoryReport } from '../bin/cli/history.ts';
import type { WhyReport } from '../bin/cli/why.ts';
import { expand, loadCatalog, LockTimeoutError, StepFailedError } from '../lambdas/core/index.ts';
import { reportFailure } from '../lambdas/core/workflow/failure-report.ts';
import type { MigrateTaskResult } from '../lambdas/core/workflow/task-contract.ts';
import { CONTROL_STATE_NAMES as C, STATE_NAMES } from '../lambdas/core/workflow/state-names.ts';
import { writeMigrations } from './support/catalog-fixtures.ts';
import { runEmc } from './support/cli-harness.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { endRun, startRun } from './support/engine.ts';
import {
  drainResult,
  executionArn,
  failureReport,
  HistoryBuilder,
  lambdaErrorDocument,
  migrateResult,
  pageOf,
  planResult,
  runSummary,
  schemaPhaseResult,
  serveExecution,
  STATE_MACHINE_ARN,
} from './support/sfn-history.ts';

const sfn = mockClient(SFNClient);
const databases: TestDatabase[] = [];
beforeEach(() => {
  sfn.reset();
});
afterEach(async () => {
  for (const db of databases.splice(0)) await db.drop();
});

const NAME = 'emc-bexar-full-0a1b2c3d';
const ARN = executionArn(NAME);
const INPUT = { targetRelease: 'bexar' };
const EXPANDED = schemaPhaseResult('expand', ['bexar_expand01', 'bexar_expand02', 'bexar_expand03'], 'bexar_expand03');

/** An execution up to its n-th migrate call (1000 rows a call, 4000 in all). */
function migratingHistory(calls: number): HistoryBuilder {
  const h = new HistoryBuilder().started(INPUT).task('start', planResult(ARN)).task('expand', EXPANDED).choice('Stop after expand?');
  for (let call = 1; call <= calls; call++) {
    h.task('migrate', migrateResult(call * 1000, 4000 - call * 1000, call === 4)).choice('Migration finished?');
  }
  return h;
}

describe('the task contract between the handlers and the CLI', () => {
  it('refuses a task result whose field was renamed, naming the state and the field, rather than reading it as missing', async () => {
    const { rowsDone, ...rest } = migrateResult(2000, 2000);
    const renamed = { ...rest, rowsMigrated: rowsDone } as unknown as MigrateTaskResult;
    const h = migratingHistory(1).task('migrate', renamed).enter(STATE_NAMES.migrate);
    serveExecution(sfn, { executionArn: ARN, name: NAME, input: INPUT, stages: [{ status: 'RUNNING', events: h.events }] });

    const run = await runEmc(['status', ARN, '--json']);

    expect(run.exitCode).toBe(1);
    expect(run.json()).toMatchObject({ error: 'ExecutionContractError' });
    expect(run.stderr + run.stdout).toContain(`The output of "${STATE_NAMES.migrate}" in this execution does not match this CLI's task contract: "rowsDone"`);
  });

  it('reads what the migrate handler really returned', async () => {
    // The same shape the handler builds (its return type is the contract's MigrateTaskResult): a field the handler
    // drops or renames fails here as well as in the handler's own tests.
    const result: MigrateTaskResult = migrateResult(3000, 1000, false, 3);
    const h = migratingHistory(1).task('migrate', result).enter(STATE_NAMES.migrate);
    serveExecution(sfn, { executionArn: ARN, name: NAME, input: INPUT, stages: [{ status: 'RUNNING', events: h.events }] });

    const run = await runEmc(['status', ARN, '--json']);

    expect(run.exitCode).toBe(0);
    expect(run.json()).toMatchObject({ migrate: { rowsDone: 3000, rowsRemaining: 1000, rowsTotal: 4000, calls: 2 } });
  });
});

describe('emc status', () => {
  it('shows the latest execution: status, current step, rows migrated of the estimated total, composite version', async () => {
    sfn.on(ListExecutionsCommand).resolves({
      executions: [{ executionArn: ARN, stateMachineArn: STATE_MACHINE_ARN, name: NAME, status: 'RUNNING', startDate: new Date() }],
    });
    serveExecution(sfn, { executionArn: ARN, name: NAME, input: INPUT, stages: [{ status: 'RUNNING', events: migratingHistory(2).enter(STATE_NAMES.migrate).events }] });

    const run = await runEmc(['status', '--state-machine-arn', STATE_MACHINE_ARN, '--json']);

    expect(run.exitCode).toBe(0);
    expect(sfn.commandCalls(ListExecutionsCommand)[0]!.args[0].input).toEqual({ stateMachineArn: STATE_MACHINE_ARN, maxResults: 1 });
    expect(run.json()).toMatchObject({
      executionArn: ARN,
      status: 'RUNNING',
      currentState: STATE_NAMES.migrate,
      phase: 'migrate',
      target: 'bexar',
      stopAfter: null,
      versionBefore: '(none)',
      version: 'bexar_expand03',
      migrate: { rowsDone: 2000, rowsRemaining: 2000, rowsTotal: 4000, calls: 2, finished: false },
      reachedDrainWait: false,
    });
  });

  it('says where the upgrade went on when the execution continued a long migration in a new one', async () => {
    const next = executionArn('c0ffee00-0000-4000-8000-000000000002');
    const output = { outcome: 'continued in a new execution', continuedIn: next };
    const h = migratingHistory(2).choice('Migration finished?').succeeded(output);
    serveExecution(sfn, { executionArn: ARN, name: NAME, input: INPUT, stages: [{ status: 'SUCCEEDED', events: h.events, output: JSON.stringify(output) }] });

    const run = await runEmc(['status', ARN]);

    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`Continued in +${next} \\(the migration goes on there: emc status ${next}\\)`));
  });

  it('reads the version after from the summary of a succeeded execution, in text', async () => {
    const summary = runSummary(ARN);
    const h = migratingHistory(4).task('finish', summary).succeeded(summary);
    serveExecution(sfn, { executionArn: ARN, name: NAME, input: INPUT, stages: [{ status: 'SUCCEEDED', events: h.events, output: JSON.stringify(summary) }] });

    const run = await runEmc(['status', ARN]);

    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain('Status        SUCCEEDED, ran ');
    expect(run.stdout).toContain('Current step  Upgrade complete');
    expect(run.stdout).toContain('Version       bexar_expand03, bexar_contract03 (was (none))');
  });

  it('resolves an execution name against the state machine found by name in the region', async () => {
    sfn.on(ListStateMachinesCommand).resolves({
      stateMachines: [
        { name: 'SomethingElse', stateMachineArn: 'arn:aws:states:eu-west-1:123456789012:stateMachine:SomethingElse', type: 'STANDARD', creationDate: new Date() },
        { name: 'UpgradeStateMachineC233778C-Ab12Cd34Ef56', stateMachineArn: STATE_MACHINE_ARN, type: 'STANDARD', creationDate: new Date() },
      ],
    });
    serveExecution(sfn, { executionArn: ARN, name: NAME, input: INPUT, stages: [{ status: 'RUNNING', events: migratingHistory(1).events }] });

    const run = await runEmc(['status', NAME, '--json']);

    expect(run.exitCode).toBe(0);
    expect(run.json()).toMatchObject({ executionArn: ARN, name: NAME });
  });

  it('says how to find the state machine when none matches (exit 6)', async () => {
    sfn.on(ListStateMachinesCommand).resolves({ stateMachines: [] });
    const run = await runEmc(['status', '--stack', 'Orders']);
    expect(run.exitCode).toBe(6);
    expect(run.stderr).toBe(
      'emc: No state machine found for stack "Orders": none of the region\'s 0 state machines has a name containing "Orders" or starting with "UpgradeStateMachine".\n' +
        'Next: Pass --state-machine-arn (or set EMC_STATE_MACHINE_ARN) to the stack output "StateMachineArn", in the stack\'s region (--region or AWS_REGION).\n',
    );
  });

  it('names an invalid or unknown execution ARN (exit 6)', async () => {
    const bad = 'arn:aws:states:eu-west-1:123456789012:execution:nope';
    sfn.on(DescribeExecutionCommand).rejects(new InvalidArn({ message: `Invalid Arn: 'Resource type not valid in this context: execution'`, $metadata: {} }));

    const run = await runEmc(['status', bad]);

    expect(run.exitCode).toBe(6);
    expect(run.stderr).toMatch(
      new RegExp(`^emc: Invalid execution ARN: ${bad} \\(Step Functions: Invalid Arn: 'Resource type not valid in this context: execution'\\)\\.\\n`),
    );
  });
});

describe('emc history', () => {
  it('shows what "Record old release" recorded, in the start phase', async () => {
    const recorded = { 'prod/orders-api': ['arn:aws:ecs:us-east-1:123456789012:task-definition/orders-api:41'] };
    const events = new HistoryBuilder().started(INPUT).task('start', planResult(ARN)).choice(C.oldReleaseToRecord).task('recordOldRelease', recorded).events;
    sfn.on(GetExecutionHistoryCommand).callsFake((input) => pageOf(events, input));
    sfn.on(DescribeExecutionCommand).resolves({ executionArn: ARN, stateMachineArn: STATE_MACHINE_ARN, name: NAME, status: 'RUNNING', startDate: new Date() });

    const report = (await runEmc(['history', ARN, '--json'])).json<ExecutionHistoryReport>();

    expect(report.entries.filter((e) => e.kind === 'exited' && e.state === C.recordOldRelease).map((e) => e.detail)).toEqual([
      'old release: prod/orders-api arn:aws:ecs:us-east-1:123456789012:task-definition/orders-api:41',
    ]);
    expect(phaseOfState(C.recordOldRelease)).toBe('start');
  });

  it('reads every page of the history and prints one line per state entered, exited, retried or failed', async () => {
    const h = new HistoryBuilder()
      .started(INPUT)
      .task('start', planResult(ARN))
      .retriedTask('expand', EXPANDED, new LockTimeoutError('bexar_expand02', 'canceling statement due to lock timeout'))
      .choice('Stop after expand?');
    for (let call = 1; call <= 4; call++) h.task('migrate', migrateResult(call * 1000, 4000 - call * 1000, call === 4)).choice('Migration finished?');
    const events = h.events;
    const pages = [events.slice(0, 20), events.slice(20, 40), events.slice(40)];
    sfn
      .on(GetExecutionHistoryCommand)
      .resolvesOnce({ events: pages[0], nextToken: 'page-2' })
      .resolvesOnce({ events: pages[1], nextToken: 'page-3' })
      .resolvesOnce({ events: pages[2] });
    sfn.on(DescribeExecutionCommand).resolves({ executionArn: ARN, stateMachineArn: STATE_MACHINE_ARN, name: NAME, status: 'RUNNING', startDate: new Date() });

    const run = await runEmc(['history', ARN, '--json']);

    expect(run.exitCode).toBe(0);
    expect(sfn.commandCalls(GetExecutionHistoryCommand).map((c) => c.args[0].input.nextToken)).toEqual([undefined, 'page-2', 'page-3']);
    const report = run.json<ExecutionHistoryReport>();
    const lines = report.entries.map((e) => `${e.kind} ${e.state ?? ''}${e.detail ? ` | ${e.detail}` : ''}`);
    expect(lines.slice(0, 5)).toEqual([
      'started  | input {"targetRelease":"bexar"}',
      `entered ${STATE_NAMES.start}`,
      `exited ${STATE_NAMES.start} | target bexar, version (none), pending expand 3 / migrate 3 / contract 3`,
      `entered ${STATE_NAMES.expand}`,
      `retried ${STATE_NAMES.expand} | LockTimeoutError: Step bexar_expand02 could not take its locks in time: canceling statement due to lock timeout`,
    ]);
    expect(lines).toContain(`exited ${STATE_NAMES.expand} | 3 steps run (bexar_expand01, bexar_expand02, bexar_expand03), version bexar_expand03`);
    expect(lines).toContain(`exited ${STATE_NAMES.migrate} | 1,000 rows this call, 2,000 done, ~2,000 remaining`);
    expect(lines.filter((l) => l.startsWith(`entered ${STATE_NAMES.migrate}`))).toHaveLength(4);
    expect(report.entries.find((e) => e.kind === 'exited' && e.state === STATE_NAMES.expand)!.durationMs).toBe(13_040);

    sfn.on(GetExecutionHistoryCommand).callsFake((input) => pageOf(events, input));
    const text = await runEmc(['history', ARN]);
    const [title, header, first, , , , retried] = text.stdout.split('\n');
    expect(title).toBe('Execution emc-bexar-full-0a1b2c3d (RUNNING), times in UTC:');
    expect(header).toBe('TIME                 EVENT    STATE                         DETAIL');
    expect(first).toBe('2025-06-01 10:00:01  started                                input {"targetRelease":"bexar"}');
    expect(retried).toBe(
      '2025-06-01 10:00:07  retried  Expand schema                 LockTimeoutError: Step bexar_expand02 could not take its locks in time: canceling statement due to lock timeout',
    );
  });
});

describe('emc why', () => {
  it('explains a failure the engine really produced: state, error, step, statement, version, next action', async () => {
    // A real StepFailedError from the engine on PostgreSQL, reported as the state machine's failure path does.
    const db = await createTestDatabase();
    databases.push(db);
    const migrations = writeMigrations({
      'r1/expand01_create_t.sql': 'CREATE TABLE t (id int PRIMARY KEY);\n',
      'r1/expand02_break.sql': 'ALTER TABLE t ADD COLUMN a int;\n\nALTER TABLE missing ADD COLUMN b int;\n',
    });
    const catalog = await loadCatalog(migrations);
    const ctx = await startRun(db.client, ARN);
    const error = await expand(ctx, catalog).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StepFailedError);
    const caught = lambdaErrorDocument('expand', error as StepFailedError);
    const failure = await reportFailure(db.client, { runId: ARN, failedIn: { expand: { Error: caught.error, Cause: caught.cause } } });
    await endRun(ctx);

    const h = new HistoryBuilder()
      .started({ targetRelease: 'r1' })
      .task('start', planResult(ARN, { target: 'r1' }))
      .failingTask('expand', error as StepFailedError)
      .task('recordFailure', failure)
      .failed(failure.error, failure.cause);
    serveExecution(sfn, { executionArn: ARN, name: NAME, input: INPUT, stages: [{ status: 'FAILED', events: h.events, error: failure.error, cause: failure.cause }] });

    const run = await runEmc(['why', ARN, '--migrations', migrations, '--json']);

    expect(run.exitCode).toBe(0);
    expect(run.json<WhyReport>()).toMatchObject({
      failed: true,
      status: 'FAILED',
      failedState: 'Expand schema',
      error: 'StepFailedError',
      stepId: 'r1_expand02',
      file: 'r1/expand02_break.sql',
      line: 3,
      sqlState: '42P01',
      statement: 'ALTER TABLE missing ADD COLUMN b int',
      retries: 0,
      version: 'r1_expand01',
      nextAction: "Fix r1_expand02's SQL (it was rolled back; the version is unchanged) and run the upgrade again: it resumes at r1_expand02.",
      rerun: 'A re-run skips the steps already applied and runs r1_expand02 again in a new transaction (it was rolled back).',
      cause: failure.cause,
    });
  });

  it('prints the failed state, error, step, statement line, version and next action', async () => {
    const thrown = new StepFailedError(
      'bexar_migrate02',
      'UPDATE images SET owner_id = ...',
      '23505',
      'duplicate key value violates unique constraint "images_owner_id_key" (bexar/migrate02_backfill_owner_id.sql, statement at line 3)',
      { transactional: true, place: { file: 'bexar/migrate02_backfill_owner_id.sql', line: 3 } },
    );
    const failure = failureReport('migrate', thrown, { version: 'bexar_expand03' });
    const cause = failure.cause;
    const h = migratingHistory(1).failingTask('migrate', thrown).task('recordFailure', failure).failed('StepFailedError', cause);
    serveExecution(sfn, { executionArn: ARN, name: NAME, input: INPUT, stages: [{ status: 'FAILED', events: h.events, error: 'StepFailedError', cause }] });

    const run = await runEmc(['why', ARN]);

    expect(run.exitCode).toBe(0);
    expect(run.stdout.split('\n')).toEqual([
      `Execution     ${NAME} (FAILED)`,
      'Failed state  Migrate data (one batch run)',
      'Error         StepFailedError',
      'Step          bexar_migrate02',
      'Statement     bexar/migrate02_backfill_owner_id.sql, statement at line 3',
      'SQLSTATE      23505',
      'Message       Step bexar_migrate02 failed (SQLSTATE 23505): duplicate key value violates unique constraint "images_owner_id_key" (bexar/migrate02_backfill_owner_id.sql, statement at line 3)',
      'Version now   bexar_expand03',
      "Next          Fix bexar_migrate02's SQL (it was rolled back; the version is unchanged) and run the upgrade again: it resumes at bexar_migrate02.",
      'Re-run        A re-run skips the steps already applied and runs bexar_migrate02 again in a new transaction (it was rolled back).',
      '',
    ]);
  });

  it('counts retries and explains an execution that was aborted mid-run', async () => {
    const h = migratingHistory(1).failingTask('migrate', new LockTimeoutError('bexar_migrate02', 'canceling statement due to lock timeout'), 3);
    h.events.pop(); // still in the state when aborted
    h.events.push({ id: h.events.length + 1, timestamp: h.now, type: 'ExecutionAborted', executionAbortedEventDetails: { error: 'Aborted', cause: 'stopped by the operator' } });
    serveExecution(sfn, { executionArn: ARN, name: NAME, input: INPUT, stages: [{ status: 'ABORTED', events: h.events, error: 'Aborted', cause: 'stopped by the operator' }] });

    const report = (await runEmc(['why', ARN, '--json'])).json<WhyReport>();

    expect(report).toMatchObject({ failed: true, status: 'ABORTED', failedState: STATE_NAMES.migrate, error: 'Aborted', retries: 2, version: 'bexar_expand03' });
    expect(report.rerun).toMatch(/^The lease of this execution was not released/);
  });

  it('says the lease is still held after an error that States.ALL cannot catch (no "Record failure")', async () => {
    const h = migratingHistory(1).enter(STATE_NAMES.migrate);
    const cause = 'The state/task \'Migrate data (one batch run)\' returned a result with a size exceeding the maximum number of bytes service limit.';
    h.events.push({ id: h.events.length + 1, timestamp: h.now, type: 'LambdaFunctionFailed', lambdaFunctionFailedEventDetails: { error: 'States.DataLimitExceeded', cause } });
    h.events.push({ id: h.events.length + 1, timestamp: h.now, type: 'ExecutionFailed', executionFailedEventDetails: { error: 'States.DataLimitExceeded', cause } });
    serveExecution(sfn, { executionArn: ARN, name: NAME, input: INPUT, stages: [{ status: 'FAILED', events: h.events, error: 'States.DataLimitExceeded', cause }] });

    const report = (await runEmc(['why', ARN, '--json'])).json<WhyReport>();

    expect(report).toMatchObject({ failed: true, status: 'FAILED', failedState: STATE_NAMES.migrate, error: 'States.DataLimitExceeded' });
    expect(report.rerun).toMatch(/^The lease of this execution was not released \(the failure path did not run\)/);
    expect(report.nextAction).toMatch(/^Wait for the lease to expire, or release it now with "emc unlock"/);
  });

  it('reports the class name alone for an error raised outside the handler (a Lambda timeout): no failure record', async () => {
    // Step Functions' own error for a task that ran past its TimeoutSeconds; the handler never saw it.
    const timeout = { error: 'States.Timeout', cause: '' };
    const failure = await reportFailure(undefined, { runId: ARN, failedIn: { migrate: { Error: timeout.error, Cause: timeout.cause } } });
    const h = migratingHistory(1).failingTask('migrate', { outsideHandler: timeout }).task('recordFailure', failure).failed(failure.error, failure.cause);
    serveExecution(sfn, { executionArn: ARN, name: NAME, input: INPUT, stages: [{ status: 'FAILED', events: h.events, error: failure.error, cause: failure.cause }] });

    const report = (await runEmc(['why', ARN, '--json'])).json<WhyReport>();

    expect(failure.record).toBeNull();
    expect(report).toMatchObject({ failed: true, failedState: STATE_NAMES.migrate, error: 'States.Timeout', stepId: null, file: null, sqlState: null, message: null });
    // No database in this test: the failure path could not release the lease, and says so.
    expect(report.nextAction).toMatch(/^Wait for the lease to expire, or release it now with "emc unlock"/);
  });

  it('says so for an execution that has not failed', async () => {
    serveExecution(sfn, { executionArn: ARN, name: NAME, input: INPUT, stages: [{ status: 'RUNNING', events: migratingHistory(1).events }] });
    const run = await runEmc(['why', ARN]);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toBe(`Execution ${NAME} has not failed: it is RUNNING (version bexar_expand03).\n`);
  });
});

describe('emc wait', () => {
  it('--until drain-wait returns 0 as soon as the execution waits for the old release to drain', async () => {
    const h = migratingHistory(2);
    const migrating = [...h.events];
    h.task('migrate', migrateResult(4000, 0, true)).choice('Migration finished?').choice('Stop after migrate?').pass('Start waiting for old release to drain', 'drain', { polls: 0 });
    h.task('drain', drainResult(false, 'demo-app-old: 2 sessions')).choice('Old release drained?').wait('Wait for old tasks to drain', false);
    const draining = [...h.events];
    const served = serveExecution(sfn, {
      executionArn: ARN,
      name: NAME,
      input: INPUT,
      stages: [
        { status: 'RUNNING', events: migrating },
        { status: 'RUNNING', events: draining },
        { status: 'SUCCEEDED', events: draining },
      ],
    });

    const run = await runEmc(['wait', ARN, '--until', 'drain-wait']);

    expect(run.exitCode).toBe(0);
    expect(served.describeCalls()).toBe(2);
    expect(run.stdout).toContain('is waiting for the old release to drain: expand and migrate are done; deploy the new release now.');
    expect(run.stdout).toContain('  waiting for the old release: demo-app-old: 2 sessions');
    // The second poll read only the new events, newest first, stopping at the first known one.
    const historyCalls = sfn.commandCalls(GetExecutionHistoryCommand).map((c) => c.args[0].input);
    expect(historyCalls.every((input) => input.reverseOrder === true)).toBe(true);
  });

  it('draws the progress bar in place on a terminal', async () => {
    serveExecution(sfn, {
      executionArn: ARN,
      name: NAME,
      input: INPUT,
      stages: [1, 2, 3].map((calls) => ({ status: 'RUNNING' as const, events: migratingHistory(calls).enter(STATE_NAMES.migrate).events })),
    });

    const run = await runEmc(['wait', ARN, '--timeout', '0.25', '--poll-interval', '5'], {}, { tty: true });

    expect(run.exitCode).toBe(10);
    const clear = '\r\x1b[2K';
    expect(run.stdout).toContain(`→ ${STATE_NAMES.migrate}\n[██████░░░░░░░░░░░░░░░░░░]  25% 1,000 of ~4,000 rows migrated${clear}`);
    expect(run.stdout).toContain(`${clear}[████████████░░░░░░░░░░░░]  50% 2,000 of ~4,000 rows migrated${clear}`);
    expect(run.stdout).toContain(`${clear}[██████████████████░░░░░░]  75% 3,000 of ~4,000 rows migrated${clear}Stopped waiting: --timeout elapsed`);
    expect(run.stdout.split('\n').filter((line) => line.startsWith('→ '))).toEqual([
      `→ ${STATE_NAMES.start}`,
      `→ ${STATE_NAMES.expand}`,
      `→ ${STATE_NAMES.migrate}`,
    ]);
  });

  it('follows a long migration into the execution it continued in, and exits with that execution\'s outcome', async () => {
    const nextName = 'c0ffee00-0000-4000-8000-000000000001';
    const next = executionArn(nextName);
    const handedOver = migratingHistory(2).choice('Migration finished?').succeeded({ outcome: 'continued in a new execution', continuedIn: next });
    serveExecution(sfn, {
      executionArn: ARN,
      name: NAME,
      input: INPUT,
      stages: [{ status: 'SUCCEEDED', events: handedOver.events, output: JSON.stringify({ outcome: 'continued in a new execution', continuedIn: next }) }],
    });
    const cause = '"Migrate data (one batch run)" failed with StepFailedError: Step bexar_migrate02 failed\nNext: fix it\nDatabase version now: bexar_expand03';
    const failing = new HistoryBuilder().started({ ...INPUT, continueFrom: ARN }).task('start', planResult(next)).failed('StepFailedError', cause);
    const served = serveExecution(sfn, {
      executionArn: next,
      name: nextName,
      input: { ...INPUT, continueFrom: ARN },
      stages: [
        { status: 'RUNNING', events: failing.events.slice(0, 3) },
        { status: 'FAILED', events: failing.events, error: 'StepFailedError', cause },
      ],
    });

    const run = await runEmc(['wait', ARN, '--poll-interval', '1']);

    // Not "SUCCEEDED": the upgrade went on, and failed, in the continuing execution.
    expect(run.exitCode).toBe(1);
    expect(served.describeCalls()).toBe(2);
    expect(run.stdout).toContain(`Execution ${ARN} continued the migration in a new execution.`);
    expect(run.stdout).toContain(`Execution ${nextName} FAILED.`);
    expect(run.stderr).toContain(`emc why ${next}`);
  });

  it('exits 1 when the execution fails before the drain wait', async () => {
    const cause = '"Expand schema" failed with StepFailedError: Step bexar_expand02 failed\nNext: fix it\nDatabase version now: bexar_expand01';
    const thrown = new StepFailedError('bexar_expand02', 'ALTER TABLE x', undefined, 'x', { transactional: true });
    const h = new HistoryBuilder().started(INPUT).task('start', planResult(ARN)).failingTask('expand', thrown).failed('StepFailedError', cause);
    serveExecution(sfn, { executionArn: ARN, name: NAME, input: INPUT, stages: [{ status: 'FAILED', events: h.events, error: 'StepFailedError', cause }] });

    const run = await runEmc(['wait', ARN, '--until', 'drain-wait']);

    expect(run.exitCode).toBe(1);
    expect(run.stdout).toContain(`Execution ${NAME} FAILED.`);
    expect(run.stderr).toBe(`Upgrade FAILED with StepFailedError. For the failed step and the next safe action: emc why ${ARN}\n`);
  });

  it('gives up after --timeout with exit 10, leaving the execution running', async () => {
    serveExecution(sfn, { executionArn: ARN, name: NAME, input: INPUT, stages: [{ status: 'RUNNING', events: migratingHistory(1).events }] });

    const run = await runEmc(['wait', ARN, '--timeout', '1', '--poll-interval', '10', '--json']);

    expect(run.exitCode).toBe(10);
    expect(run.json()).toMatchObject({ outcome: 'timed-out', exitCode: 10, execution: { status: 'RUNNING' } });
    expect(sfn.commandCalls(DescribeExecutionCommand)).toHaveLength(7);
  });

  it('pages the newest events first and keeps only the unseen ones', () => {
    const events = migratingHistory(4).events;
    const first = pageOf(events, { executionArn: ARN, reverseOrder: true, maxResults: 10 });
    expect(first.events[0]!.id).toBe(events.length);
    expect(first.nextToken).toBe('10');
  });
});
