import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  ExecutionDoesNotExist,
  SFNClient,
  StartExecutionCommand,
  StateMachineDoesNotExist,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { canonicalJson, executionName, MAX_EXECUTION_NAME, startExecution } from '../bin/cli/start.ts';
import { LeaseHeldError } from '../lambdas/core/errors.ts';
import { STATE_NAMES } from '../lambdas/core/workflow/state-names.ts';
import { DEMO_MIGRATIONS } from './support/catalog-fixtures.ts';
import { runEmc } from './support/cli-harness.ts';
import { drainResult, executionArn, failureReport, HistoryBuilder, migrateResult, planResult, runSummary, schemaPhaseResult, serveExecution, STATE_MACHINE_ARN } from './support/sfn-history.ts';

const sfn = mockClient(SFNClient);
beforeEach(() => {
  sfn.reset();
});

const notFound = (arn: string) => new ExecutionDoesNotExist({ message: `Execution Does Not Exist: '${arn}'`, $metadata: {} });
const start = (...args: string[]) =>
  runEmc(['start', '--state-machine-arn', STATE_MACHINE_ARN, '--migrations', DEMO_MIGRATIONS, ...args]);

describe('execution names', () => {
  it.each([
    [{ targetRelease: 'bexar' }, /^emc-bexar-full-[0-9a-f]{8}$/],
    [{ targetRelease: 'bexar', stopAfter: 'migrate' as const }, /^emc-bexar-migrate-[0-9a-f]{8}$/],
    [{ targetRelease: 'bexar', stopAfter: 'expand' as const }, /^emc-bexar-expand-[0-9a-f]{8}$/],
  ])('names %j like %s', (input, pattern) => {
    expect(executionName(input)).toMatch(pattern);
  });

  it('gives the same input the same name, whatever the key order, and another input another name', () => {
    const a = executionName({ targetRelease: 'bexar', settings: { batchSize: 500, batchPauseMs: 0 } });
    const b = executionName({ settings: { batchPauseMs: 0, batchSize: 500 }, targetRelease: 'bexar' });
    const c = executionName({ targetRelease: 'bexar', settings: { batchSize: 501, batchPauseMs: 0 } });
    expect(a).toBe(b);
    expect(c).not.toBe(a);
    expect(canonicalJson({ b: 1, a: { d: 2, c: 3 } })).toBe('{"a":{"c":3,"d":2},"b":1}');
  });

  it('numbers later attempts and stays within 80 valid characters for any release name', () => {
    const long = `release.${'x'.repeat(200)}+build/7`;
    for (const attempt of [1, 2, 20]) {
      const name = executionName({ targetRelease: long, stopAfter: 'migrate' }, attempt);
      expect(name.length).toBeLessThanOrEqual(MAX_EXECUTION_NAME);
      expect(name).toMatch(/^[A-Za-z0-9._-]+$/);
      expect(name.endsWith(attempt > 1 ? `-r${attempt}` : '')).toBe(true);
    }
  });
});

describe('emc start', () => {
  it('starts an execution named after its input, with the newest release of --migrations written in', async () => {
    sfn.on(DescribeExecutionCommand).callsFake(({ executionArn: arn }) => {
      throw notFound(arn);
    });
    sfn.on(StartExecutionCommand).callsFake(({ name }) => ({ executionArn: executionArn(name), startDate: new Date('2025-06-01T10:00:00Z') }));

    const run = await start('--stop-after', 'migrate', '--settings', '{"batchSize":500}', '--json');

    expect(run.exitCode).toBe(0);
    const calls = sfn.commandCalls(StartExecutionCommand);
    expect(calls).toHaveLength(1);
    const sent = calls[0]!.args[0].input;
    expect(JSON.parse(sent.input!)).toEqual({ targetRelease: 'bexar', stopAfter: 'migrate', settings: { batchSize: 500 } });
    expect(sent.name).toBe(executionName({ targetRelease: 'bexar', stopAfter: 'migrate', settings: { batchSize: 500 } }));
    expect(sent.stateMachineArn).toBe(STATE_MACHINE_ARN);
    expect(run.json()).toMatchObject({ name: sent.name, executionArn: executionArn(sent.name!), attached: false, status: 'RUNNING' });
  });

  it('writes --drain-sessions into the input as drain.sessions', async () => {
    sfn.on(DescribeExecutionCommand).callsFake(({ executionArn: arn }) => {
      throw notFound(arn);
    });
    sfn.on(StartExecutionCommand).callsFake(({ name }) => ({ executionArn: executionArn(name), startDate: new Date('2025-06-01T10:00:00Z') }));

    const run = await start('--drain-sessions', 'orders-api/v41%', '--json');

    expect(run.exitCode).toBe(0);
    const sent = sfn.commandCalls(StartExecutionCommand)[0]!.args[0].input;
    expect(JSON.parse(sent.input!)).toEqual({ targetRelease: 'bexar', drain: { sessions: 'orders-api/v41%' } });
  });

  it('--restart-step writes restartSteps into the input (a different input, so a new execution)', async () => {
    sfn.on(DescribeExecutionCommand).callsFake(({ executionArn: arn }) => {
      throw notFound(arn);
    });
    sfn.on(StartExecutionCommand).callsFake(({ name }) => ({ executionArn: executionArn(name), startDate: new Date() }));

    const run = await start('--restart-step', 'bexar_migrate02', '--restart-step', 'bexar_migrate03');

    expect(run.exitCode).toBe(0);
    const sent = sfn.commandCalls(StartExecutionCommand)[0]!.args[0].input;
    expect(JSON.parse(sent.input!)).toEqual({ targetRelease: 'bexar', restartSteps: ['bexar_migrate02', 'bexar_migrate03'] });
    expect(sent.name).not.toBe(executionName({ targetRelease: 'bexar' }));
  });

  it('attaches to the running execution of the same input instead of starting a second upgrade', async () => {
    const name = executionName({ targetRelease: 'bexar' });
    sfn.on(DescribeExecutionCommand, { executionArn: executionArn(name) }).resolves({
      executionArn: executionArn(name),
      stateMachineArn: STATE_MACHINE_ARN,
      name,
      status: 'RUNNING',
      startDate: new Date('2025-06-01T09:00:00Z'),
      input: JSON.stringify({ targetRelease: 'bexar' }),
    });

    const run = await start('--release', 'bexar');

    expect(run.exitCode).toBe(0);
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
    expect(run.stdout).toContain(`Attached to execution ${name} (RUNNING), already started with the same input.`);
  });

  it('treats ExecutionAlreadyExists (a concurrent start of the same input) as "attach"', async () => {
    const name = executionName({ targetRelease: 'bexar' });
    const arn = executionArn(name);
    sfn
      .on(DescribeExecutionCommand, { executionArn: arn })
      .rejectsOnce(notFound(arn))
      .resolves({ executionArn: arn, stateMachineArn: STATE_MACHINE_ARN, name, status: 'RUNNING', startDate: new Date(), input: '{"targetRelease":"bexar"}' });
    sfn.on(StartExecutionCommand).rejects(new ExecutionAlreadyExists({ message: `Execution Already Exists: '${arn}'`, $metadata: {} }));

    const result = await startExecution({ sfn: new SFNClient({ region: 'eu-west-1' }) }, { stateMachineArn: STATE_MACHINE_ARN, release: 'bexar' });

    expect(result).toMatchObject({ name, executionArn: arn, attached: true, status: 'RUNNING', previousAttempts: [] });
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(1);
  });

  it('starts the next attempt when the execution of the same input failed', async () => {
    const first = executionName({ targetRelease: 'bexar' });
    const second = executionName({ targetRelease: 'bexar' }, 2);
    sfn.on(DescribeExecutionCommand, { executionArn: executionArn(first) }).resolves({
      executionArn: executionArn(first),
      stateMachineArn: STATE_MACHINE_ARN,
      name: first,
      status: 'FAILED',
      startDate: new Date(),
      input: '{"targetRelease":"bexar"}',
    });
    sfn.on(DescribeExecutionCommand, { executionArn: executionArn(second) }).rejects(notFound(executionArn(second)));
    sfn.on(StartExecutionCommand).callsFake(({ name }) => ({ executionArn: executionArn(name), startDate: new Date() }));

    const run = await start('--release', 'bexar');

    expect(run.exitCode).toBe(0);
    expect(sfn.commandCalls(StartExecutionCommand)[0]!.args[0].input.name).toBe(second);
    expect(run.stdout).toContain(`Execution ${first} ended FAILED; starting the next attempt.`);
    expect(run.stdout).toContain(`Started execution ${second}.`);
  });

  it('--wait shows progress and exits 0 when the execution succeeds', async () => {
    const input = { targetRelease: 'bexar' };
    const name = executionName(input);
    const arn = executionArn(name);
    const h = new HistoryBuilder().started(input).task('start', planResult(arn));
    const atStart = [...h.events];
    h.task('expand', schemaPhaseResult('expand', ['bexar_expand01'], 'bexar_expand03'))
      .choice('Stop after expand?')
      .task('migrate', migrateResult(1000, 3000))
      .choice('Migration finished?');
    const migrating = [...h.events];
    h.task('migrate', migrateResult(4000, 0, true))
      .choice('Migration finished?')
      .choice('Stop after migrate?')
      .pass('Start waiting for old release to drain', 'drain', { polls: 0 })
      .task('drain', drainResult(true, 'no old-release sessions'))
      .choice('Old release drained?')
      .task('contract', schemaPhaseResult('contract', [], 'bexar_expand03, bexar_contract03', 'bexar_expand03'));
    const summary = runSummary(arn);
    h.task('finish', summary).succeeded(summary);
    serveExecution(sfn, {
      executionArn: arn,
      name,
      input,
      notStartedYet: true,
      stages: [
        { status: 'RUNNING', events: atStart },
        { status: 'RUNNING', events: migrating },
        { status: 'SUCCEEDED', events: h.events, output: JSON.stringify(summary) },
      ],
    });

    const run = await start('--wait', '--poll-interval', '1');

    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain(`Started execution ${name}.`);
    expect(run.stdout).toContain(`→ ${STATE_NAMES.start}`);
    expect(run.stdout).toContain(`→ ${STATE_NAMES.migrate}`);
    expect(run.stdout).toMatch(/\[█{6}░{18}\]  25% 1,000 of ~4,000 rows migrated/);
    expect(run.stdout).toContain(`Execution ${name} SUCCEEDED.`);
    expect(run.stdout).toContain('Version       bexar_expand03, bexar_contract03 (was (none))');
  });

  it('--wait exits 1 with the Error and Cause when the execution fails', async () => {
    const input = { targetRelease: 'bexar' };
    const name = executionName(input);
    const arn = executionArn(name);
    const held = new LeaseHeldError('arn:other', new Date('2025-06-01T11:00:00.000Z'));
    const failure = failureReport('start', held, { version: 'bexar_expand01', leaseReleased: false });
    const cause = failure.cause;
    const h = new HistoryBuilder().started(input).failingTask('start', held).task('recordFailure', failure).failed('LeaseHeldError', cause);
    serveExecution(sfn, {
      executionArn: arn,
      name,
      input,
      notStartedYet: true,
      stages: [{ status: 'FAILED', events: h.events, error: 'LeaseHeldError', cause }],
    });

    const run = await start('--release', 'bexar', '--wait', '--json');

    expect(run.exitCode).toBe(1);
    const out = run.json<{ outcome: string; exitCode: number; execution: { status: string; error: string; cause: string; version: string } }>();
    expect(out).toMatchObject({ outcome: 'failed', exitCode: 1, execution: { status: 'FAILED', error: 'LeaseHeldError', cause, version: 'bexar_expand01' } });
  });

  it('refuses an unknown release before starting anything', async () => {
    const run = await start('--release', 'nope');

    expect(run.exitCode).toBe(2);
    expect(run.stderr).toBe(
      'emc: Unknown release "nope": the migrations ship "bexar".\n' +
        'Next: Correct the execution input and start a new execution; the database was not touched.\n',
    );
    expect(sfn.calls()).toHaveLength(0);
  });

  it.each([
    [['--settings', '{"batchSize":0}'], /"settings\.batchSize": Too small/],
    [['--settings', '{"batchSise":10}'], /unknown field "settings\.batchSise"/],
    [['--settings', 'not json'], /option '--settings <json>' argument 'not json' is invalid\. not JSON/],
    [['--stop-after', 'contract'], /Allowed choices are expand, migrate/],
    [['--new-task-definition', 'web'], /expected <service>=<task definition/],
    [['--drain-sessions', '%'], /"drain\.sessions": must be a LIKE pattern/],
  ])('exits 2 for invalid options %j', async (args, message) => {
    const run = await start(...args);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  it('names a missing state machine (exit 6)', async () => {
    const arn = 'arn:aws:states:eu-west-1:123456789012:stateMachine:Gone';
    sfn.on(DescribeExecutionCommand).callsFake(({ executionArn: e }) => {
      throw notFound(e);
    });
    sfn.on(StartExecutionCommand).rejects(new StateMachineDoesNotExist({ message: `State Machine Does Not Exist: '${arn}'`, $metadata: {} }));

    const run = await runEmc(['start', '--release', 'bexar', '--state-machine-arn', arn]);

    expect(run.exitCode).toBe(6);
    expect(run.stderr).toBe(
      `emc: State machine not found: ${arn} (Step Functions: State Machine Does Not Exist: '${arn}').\n` +
        'Next: Pass --state-machine-arn (or set EMC_STATE_MACHINE_ARN) to the stack output "StateMachineArn", in the stack\'s region (--region or AWS_REGION).\n',
    );
  });

  it('refuses a state machine ARN that is not one (exit 6)', async () => {
    const run = await runEmc(['start', '--release', 'bexar', '--state-machine-arn', 'EmcUpgrade']);
    expect(run.exitCode).toBe(6);
    expect(run.stderr).toMatch(/^emc: Not a state machine ARN: "EmcUpgrade" \(expected arn:aws:states:<region>:<account>:stateMachine:<name>\)\.\n/);
  });

  it('says what to do when AWS credentials are missing (exit 7)', async () => {
    const missing = Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' });
    sfn.on(DescribeExecutionCommand).rejects(missing);

    const run = await runEmc(['start', '--release', 'bexar', '--state-machine-arn', STATE_MACHINE_ARN, '--json']);

    expect(run.exitCode).toBe(7);
    expect(run.stderr).toBe(
      'emc: No usable AWS credentials (CredentialsProviderError: Could not load credentials from any providers).\n' +
        'Next: Set AWS_PROFILE (run "aws sso login" for SSO profiles) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and AWS_REGION; in CI, assume the deployment role first.\n',
    );
    expect(run.json()).toMatchObject({ ok: false, exitCode: 7, error: 'AwsCredentialsError' });
  });

  it('takes the state machine from EMC_STATE_MACHINE_ARN', async () => {
    sfn.on(DescribeExecutionCommand).callsFake(({ executionArn: e }) => {
      throw notFound(e);
    });
    sfn.on(StartExecutionCommand).callsFake(({ name }) => ({ executionArn: executionArn(name), startDate: new Date() }));

    const run = await runEmc(['start', '--release', 'bexar'], { env: { EMC_STATE_MACHINE_ARN: STATE_MACHINE_ARN } });

    expect(run.exitCode).toBe(0);
    expect(sfn.commandCalls(StartExecutionCommand)[0]!.args[0].input.stateMachineArn).toBe(STATE_MACHINE_ARN);
  });
});
