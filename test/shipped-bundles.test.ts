import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDataApiEmulator, type DataApiEmulator } from '../bin/local/data-api-emulator/index.ts';
import { LambdaInvocationError, LocalLambda, type DeployedFunction } from '../bin/local/local-lambda.ts';
import { localRuntimeEnvironment } from '../bin/local/run-local-execution.ts';
import { synthesizeStateMachine, type SynthesizedStateMachine } from '../bin/local/synthesized-state-machine.ts';
import { acquireLease, ensureStateSchema, releaseLease } from '../lambdas/core/index.ts';
import { RETRY_POLICIES } from '../lambdas/core/retry-policies.ts';
import { CONTROL_STATE_NAMES, WORKFLOW_TASKS, type WorkflowTask } from '../lambdas/core/workflow/state-names.ts';
import { CATALOG_FILE_NAME } from '../lib/catalog-at-synth.ts';
import { BUNDLE_FILE } from '../lib/lambda-bundles.ts';
import { DrainSource } from '../lib/drain-source.ts';
import { DEMO_MIGRATIONS } from './support/catalog-fixtures.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { planResult } from './support/sfn-history.ts';

// The functions exactly as `cdk deploy` uploads them (the staged assets of a real synth), each loaded by plain node in
// a fresh process under the stand-in Lambda runtime, talking to the Data API emulator through the real AWS SDK.
const ASSEMBLIES = join(import.meta.dirname, '../.emc-local/cdk.out');

let outdir: string;
let synthesized: SynthesizedStateMachine;
let db: TestDatabase;
let dataApi: DataApiEmulator;
const lambdas: LocalLambda[] = [];
/** Every function, by the task it is named after (the drain function also answers "Record old release"). */
type FunctionName = WorkflowTask | 'recordFailure';
const FUNCTIONS: readonly FunctionName[] = [...WORKFLOW_TASKS, 'recordFailure'];

beforeAll(async () => {
  mkdirSync(ASSEMBLIES, { recursive: true });
  outdir = mkdtempSync(join(ASSEMBLIES, 'bundles-test-'));
  db = await createTestDatabase();
  dataApi = await startDataApiEmulator({ postgresUrl: db.url });
  synthesized = synthesizeStateMachine({
    migrationsDirectory: DEMO_MIGRATIONS,
    drainSource: DrainSource.databaseSessions('demo-app-old%'),
    databaseName: db.name,
    outdir,
  });
});

afterAll(async () => {
  await Promise.all(lambdas.map((l) => l.close()));
  await dataApi.stop();
  await db.drop();
  rmSync(outdir, { recursive: true, force: true });
});

function deployed(task: FunctionName): DeployedFunction {
  const fn = synthesized.functions.get(task);
  if (!fn) throw new Error(`no function for ${task}`);
  return fn;
}

function freshProcess(task: FunctionName): LocalLambda {
  const local = new LocalLambda(deployed(task), {
    runtimeEnvironment: localRuntimeEnvironment(dataApi, 'SILENT'),
  });
  lambdas.push(local);
  return local;
}

async function errorTypeOf(invocation: Promise<unknown>): Promise<string> {
  const error = await invocation.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof LambdaInvocationError)) throw new Error(`expected a failed invocation, got ${String(error)}`);
  return error.document.errorType;
}

const planOf = (runId: string) => planResult(runId, { startedAt: new Date().toISOString() });

describe('the shipped Lambda bundles', () => {
  it('are minified bundles whose code asset holds only the bundle and the compiled catalog', () => {
    for (const task of FUNCTIONS) {
      const fn = deployed(task);
      expect(fn.handler, task).toBe('index.handler');
      expect(readdirSync(fn.codeDirectory).sort(), task).toEqual([CATALOG_FILE_NAME, BUNDLE_FILE]);
      const bundle = readFileSync(join(fn.codeDirectory, BUNDLE_FILE), 'utf8');
      // Minified: long lines (only template literals keep their line breaks), not the sources' short ones.
      expect(bundle.length / bundle.split('\n').length, task).toBeGreaterThan(500);
      expect(bundle.length, task).toBeLessThan(300 * 1024);
      // The SQL parser is not in Lambda: nothing a function runs may reach for it (the catalog is compiled at synth).
      expect(bundle, task).not.toContain('libpg-query');
    }
  });

  it.each(FUNCTIONS)('%s reports a malformed event as InputError, its class name, from a fresh node process', async (task) => {
    expect(await errorTypeOf(freshProcess(task).invoke({ unexpected: true }))).toBe('InputError');
  });

  it('the drain function reports a malformed "Record old release" request as InputError too', async () => {
    expect(await errorTypeOf(freshProcess('drain').invoke({ request: 'record-old-release' }))).toBe('InputError');
  });

  it('report the engine refusals under their class names: LeaseHeldError, PhaseGateError', async () => {
    const other = 'arn:aws:states:us-east-1:123456789012:execution:other:run';
    const mine = 'arn:aws:states:us-east-1:123456789012:execution:mine:run';
    await ensureStateSchema(db.client);
    await acquireLease(db.client, other, 900);
    expect(await errorTypeOf(freshProcess('start').invoke({ executionArn: mine, input: {} }))).toBe('LeaseHeldError');
    await releaseLease(db.client, other);
    // With the lease but before expand ran, migrate's gate refuses.
    await acquireLease(db.client, mine, 900);
    expect(await errorTypeOf(freshProcess('migrate').invoke({ plan: planOf(mine), callsBefore: 0 }))).toBe('PhaseGateError');
    await releaseLease(db.client, mine);
  });

  it('retry exactly the transient errors each can throw: every Retry name is a class whose name its bundle holds, and back', () => {
    const transient = Object.keys(RETRY_POLICIES);
    for (const [stateName, task] of synthesized.tasks) {
      const state = synthesized.definition.States[stateName] as { Retry?: { ErrorEquals: string[] }[] };
      const bundle = readFileSync(join(deployed(task).codeDirectory, BUNDLE_FILE), 'utf8');
      const engineErrors = (state.Retry ?? []).flatMap((r) => r.ErrorEquals).filter((e) => !e.startsWith('Lambda.'));
      for (const name of engineErrors) expect(Object.hasOwn(RETRY_POLICIES, name), `${stateName} retries ${name}`).toBe(true);
      const thrown = transient.filter((name) => new RegExp(`["'\`]${name}["'\`]`).test(bundle));
      // "Record failure" retries nothing of the engine's: it never throws a failure of its own (record-failure-task.ts).
      expect(engineErrors.sort(), stateName).toEqual(stateName === CONTROL_STATE_NAMES.recordFailure ? [] : thrown.sort());
    }
  });

});
