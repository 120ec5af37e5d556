import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEMO_MIGRATIONS } from '../bin/local/demo-database.ts';
import { synthesizeStateMachine } from '../bin/local/synthesized-state-machine.ts';
import * as drainErrors from '../lambdas/core/drain/drain-errors.ts';
import * as engineErrors from '../lambdas/core/errors.ts';
import * as dataApiClient from '../lambdas/core/sql/data-api-client.ts';
import * as sqlClient from '../lambdas/core/sql/sql-client.ts';
import * as lambdaEnvironment from '../lambdas/handlers/commons/environment.ts';
import { DrainSource } from '../lib/drain-source.ts';

const RUNBOOK = join(import.meta.dirname, '../docs/runbook.md');

/**
 * Every error class an execution can end with, by its name (the execution's Error): the exported Error subclasses
 * of the engine's error modules, of the SQL clients and of the functions' environment (checked as a function loads),
 * except the abstract base every engine error extends.
 */
const ERROR_CLASSES = [engineErrors, drainErrors, sqlClient, dataApiClient, lambdaEnvironment]
  .flatMap((module) => Object.values(module))
  .filter((value): value is new (...args: never[]) => Error => typeof value === 'function' && value.prototype instanceof Error)
  .filter((value) => (value as unknown) !== engineErrors.EmcError)
  .map((value) => value.name);

/** Step Functions' and Lambda's own errors (and statuses) an execution can end with, which no class of ours names. */
const SERVICE_ERRORS = [
  'States.Timeout',
  'Sandbox.Timedout',
  'Lambda.ClientExecutionTimeoutException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'StepFunctions.ThrottlingException',
  'StepFunctions.SdkClientException',
  'Lambda.Unknown',
  'Runtime.ExitError',
  'States.TaskFailed',
  'Lambda.TooManyRequestsException',
  'Lambda.ServiceException',
  'States.DataLimitExceeded',
  'States.Runtime',
  // A thrown error no class of ours made: the task's failure record takes its name (lambdas/handlers/commons/task.ts).
  'Error',
  // What "Record failure" reports when no error was recorded (lambdas/core/workflow/failure-report.ts).
  'UnknownError',
  'ABORTED',
];

describe('docs/runbook.md', () => {
  const headings = readFileSync(RUNBOOK, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('### '))
    .map((line) => line.slice(4).trim());

  it('finds the error classes to cover', () => {
    expect(ERROR_CLASSES).toEqual(expect.arrayContaining(['StepFailedError', 'DrainTimeoutError', 'SqlError', 'StatementStillRunningError']));
    expect(ERROR_CLASSES.length).toBeGreaterThan(20);
  });

  it.each([...ERROR_CLASSES, ...SERVICE_ERRORS])('has a section for %s', (name) => {
    expect(headings, `docs/runbook.md has no "### ${name}" section: add one (what, why, safe, next)`).toContain(name);
  });

  // A retried error ends the execution once its retries are spent (the Catch sends it to "Record failure").
  describe('every error the synthesized state machine retries or catches', () => {
    let handled: string[];
    beforeAll(() => {
      const { definition } = synthesizeStateMachine({ migrationsDirectory: DEMO_MIGRATIONS, drainSource: DrainSource.databaseSessions('x%') });
      const states = Object.values(definition.States) as { Retry?: { ErrorEquals: string[] }[]; Catch?: { ErrorEquals: string[] }[] }[];
      handled = [...new Set(states.flatMap((s) => [...(s.Retry ?? []), ...(s.Catch ?? [])]).flatMap((r) => r.ErrorEquals))];
    });

    it('has a section (States.ALL, the wildcard, aside)', () => {
      expect(handled).toEqual(expect.arrayContaining(['States.ALL', 'States.Timeout', 'Lambda.ServiceException', 'LockTimeoutError']));
      expect(handled.filter((name) => name !== 'States.ALL' && !headings.includes(name))).toEqual([]);
    });
  });

  it('has no section for an error that no longer exists', () => {
    const known = new Set([...ERROR_CLASSES, ...SERVICE_ERRORS]);
    expect(headings.filter((h) => !known.has(h))).toEqual([]);
  });

  it('says what, why, safe and next in every section', () => {
    const text = readFileSync(RUNBOOK, 'utf8');
    for (const section of text.split(/^### /m).slice(1)) {
      const name = section.slice(0, section.indexOf('\n'));
      for (const part of ['**What**', '**Why**', '**Safe**', '**Next**']) {
        expect(section.includes(part), `section ${name} lacks ${part}`).toBe(true);
      }
    }
  });
});
