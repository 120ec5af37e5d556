import './support/quiet-handler-logs.ts';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Duration, Stack } from 'aws-cdk-lib';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedDemoDatabase } from '../bin/local/demo-database.ts';
import {
  acquireLease,
  contract,
  ensureStateSchema,
  expand,
  loadCatalog,
  PgSqlClient,
  releaseLease,
  resolveSettings,
  type Catalog,
} from '../lambdas/core/index.ts';
import { once } from '../lambdas/handlers/commons/dependencies.ts';
import { TaskFailedError } from '../lambdas/handlers/commons/task.ts';
import { createContractTask } from '../lambdas/handlers/tasks/contract-task.ts';
import { createMigrateTask } from '../lambdas/handlers/tasks/migrate-task.ts';
import { createStartTask } from '../lambdas/handlers/tasks/start-task.ts';
import type { DrainSourceConfig } from '../lambdas/core/drain/drain-gate.ts';
import type { UpgradePlan } from '../lambdas/core/workflow/upgrade-plan.ts';
import { DrainSource } from '../lib/drain-source.ts';
import { ExpandMigrateContractUpgrade, type ExpandMigrateContractUpgradeProps } from '../lib/expand-migrate-contract-upgrade.ts';
import { DEMO_MIGRATIONS, writeMigrations } from './support/catalog-fixtures.ts';
import type { TestDatabase } from './support/database.ts';
import { dumpDatabase } from './support/database-dump.ts';
import { createTemplate, type DatabaseTemplate } from './support/database-templates.ts';
import { migrateToEnd } from './support/engine.ts';
import { rejectionOf } from './support/engine-faults.ts';
import { recordFigures } from './support/reliability-figures.ts';

/**
 * Bad input of every kind the tool takes (the migrations catalog, the execution input, the construct's props, the
 * events between tasks, and the state the database is in), as one table. Each case must be
 * refused with the error class the state machine acts on and a message naming the problem (file, step or field),
 * and leave the database exactly as it was: the application's schema and rows, and every row of the tool's tables.
 */

type DatabaseState = 'seeded' | 'expanded' | 'migrated' | 'completed';
type Category = 'catalog' | 'execution input' | 'task event' | 'construct props' | 'database state';

interface Context {
  readonly db: TestDatabase;
  /** The real Lambda task handlers over this database and the given migrations directory. */
  handlers(migrations?: string, drain?: DrainSourceConfig): Record<'start' | 'migrate' | 'contract', (event: unknown) => Promise<unknown>>;
}

interface BadInput {
  readonly name: string;
  readonly category: Category;
  readonly state: DatabaseState;
  /** More state, part of the "before" snapshot (a lease held by another run, a late row, ...). */
  readonly setup?: (ctx: Context) => Promise<void>;
  readonly act: (ctx: Context) => Promise<unknown> | unknown;
  /** The error class name (what Step Functions' Retry and Catch match on). */
  readonly error: string | RegExp;
  readonly message: RegExp;
}

/** The demo migrations as a files map, changed by `edit`, written to a new directory. */
function demoWith(edit: (files: Record<string, string | Uint8Array>) => void, releases = ['bexar']): string {
  const files: Record<string, string | Uint8Array> = {};
  for (const name of readdirSync(join(DEMO_MIGRATIONS, 'bexar'))) {
    files[`bexar/${name}`] = readFileSync(join(DEMO_MIGRATIONS, 'bexar', name), 'utf8');
  }
  edit(files);
  return writeMigrations(files, releases);
}

const LOCAL = { account: '123456789012', region: 'us-east-1' };
function synth(props: Partial<ExpandMigrateContractUpgradeProps> & { clusterArn?: string | undefined }): void {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'BadProps', { env: LOCAL });
  new ExpandMigrateContractUpgrade(stack, 'Upgrade', {
    clusterArn: 'arn:aws:rds:us-east-1:123456789012:cluster:orders',
    secret: secretsmanager.Secret.fromSecretCompleteArn(stack, 'Secret', 'arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf'),
    databaseName: 'orders',
    migrationsDirectory: DEMO_MIGRATIONS,
    drainSource: DrainSource.databaseSessions('orders-api/v41%'),
    ...props,
  });
}

/** A plan as "Start upgrade" leaves it in the execution's data, for calling later tasks directly. */
function planFor(runId: string): UpgradePlan {
  return {
    runId,
    target: 'bexar',
    stopAfter: null,
    settings: resolveSettings({ batchPauseMs: 0 }),
    restartSteps: [],
    versionBefore: '(none)',
    pending: { expand: [], migrate: [], contract: [] },
    lintOverrides: [],
    newTaskDefinitions: {},
    startedAt: new Date().toISOString(),
    continuedFrom: null,
    oldTaskDefinitions: {},
    recordOldRelease: false,
  };
}

async function holdLease(ctx: Context, owner: string): Promise<void> {
  await ensureStateSchema(ctx.db.client);
  await acquireLease(ctx.db.client, owner, 900);
}

const SESSION_DRAIN: DrainSourceConfig = { kind: 'database-sessions', applicationNamePattern: 'demo-app-old%' };
/** Refused by "Start upgrade", which has no ECS client. */
const ECS_DRAIN: DrainSourceConfig = { kind: 'ecs', services: [{ cluster: 'arn:aws:ecs:us-east-1:123456789012:cluster/prod', service: 'orders-api' }] };

const start = (input: unknown) => (ctx: Context) => ctx.handlers().start({ executionArn: 'arn:aws:states:us-east-1:123456789012:execution:Upgrade:bad', input });

/** A catalog case: the demo migrations changed by `edit`, refused by "Start upgrade" while loading. */
function badCatalog(name: string, state: DatabaseState, edit: (files: Record<string, string | Uint8Array>) => void, message: RegExp): BadInput {
  return {
    name: `catalog: ${name}`,
    category: 'catalog',
    state,
    act: (ctx) => ctx.handlers(demoWith(edit)).start({ executionArn: 'x', input: {} }),
    error: 'CatalogError',
    message,
  };
}

const CASES: BadInput[] = [
  // The migrations catalog: refused while loading, before any SQL (the messages themselves are pinned in catalog.test).
  {
    name: 'catalog: an expand step drops a column',
    category: 'catalog',
    state: 'seeded',
    act: (ctx) => ctx.handlers(demoWith((f) => (f['bexar/expand04_drop_owner.sql'] = 'ALTER TABLE images DROP COLUMN owner;\n'))).start({ executionArn: 'x', input: {} }),
    error: 'CatalogError',
    message: /bexar\/expand04_drop_owner\.sql:1: expand must not drop column "owner"/,
  },
  {
    name: 'catalog: a release folder missing from releases.json',
    category: 'catalog',
    state: 'expanded',
    act: (ctx) => ctx.handlers(demoWith((f) => (f['cactus/expand01_add_title.sql'] = 'ALTER TABLE images ADD COLUMN title text;\n'))).start({ executionArn: 'x', input: {} }),
    error: 'CatalogError',
    message: /cactus\/: release folder "cactus" is not listed in releases\.json/,
  },
  {
    name: 'catalog: a migrate step without a batch strategy',
    category: 'catalog',
    state: 'migrated',
    act: (ctx) =>
      ctx.handlers(demoWith((f) => (f['bexar/migrate04_lower_names.sql'] = 'UPDATE images SET name = lower(name);\n'))).migrate({ plan: planFor('x'), callsBefore: 0 }),
    error: 'CatalogError',
    message: /bexar\/migrate04_lower_names\.sql: a migrate step must declare its batch strategy/,
  },
  badCatalog(
    'a step file in Latin-1, not UTF-8',
    'seeded',
    (f) => (f['bexar/expand04_add_title.sql'] = Buffer.from("ALTER TABLE images ADD COLUMN title text DEFAULT 'caf\u00e9';\n", 'latin1')),
    /bexar\/expand04_add_title\.sql:1:54: not valid UTF-8: byte 0xE9 at byte offset 53/,
  ),
  badCatalog(
    'a directive inside a dollar-quoted body',
    'expanded',
    (f) =>
      (f['bexar/expand04_fn.sql'] =
        'CREATE FUNCTION images_touch() RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n-- emc:no-transaction\n  PERFORM 1;\nEND\n$$;\n'),
    /bexar\/expand04_fn\.sql:3: "-- emc:no-transaction" is inside a string, a dollar-quoted body or a block comment, where emc does not read directives/,
  ),
  badCatalog(
    'a directive inside a statement',
    'expanded',
    (f) => (f['bexar/expand04_drop.sql'] = 'ALTER TABLE images\n-- emc:allow-destructive unused\n  DROP COLUMN is_public;\n'),
    /bexar\/expand04_drop\.sql:2: "-- emc:allow-destructive" is inside the statement starting on line 1/,
  ),
  badCatalog(
    'a directive after SQL on the same line',
    'seeded',
    (f) => (f['bexar/expand04_add_title.sql'] = 'ALTER TABLE images ADD COLUMN title text; -- emc:no-transaction\n'),
    /bexar\/expand04_add_title\.sql:1: "-- emc:no-transaction" follows SQL on the same line/,
  ),
  badCatalog(
    'BEGIN and COMMIT in a step',
    'expanded',
    (f) => (f['bexar/expand04_add_title.sql'] = 'BEGIN;\nALTER TABLE images ADD COLUMN title text;\nCOMMIT;\n'),
    /bexar\/expand04_add_title\.sql:1: BEGIN is not allowed in a step: emc runs each step in one transaction of its own/,
  ),
  badCatalog(
    'a SAVEPOINT in a contract step',
    'migrated',
    (f) => (f['bexar/contract04_drop_name.sql'] = 'SAVEPOINT s;\nALTER TABLE images DROP COLUMN name;\nRELEASE SAVEPOINT s;\n'),
    /bexar\/contract04_drop_name\.sql:1: SAVEPOINT is not allowed in a step/,
  ),
  badCatalog(
    'SET lock_timeout in a step',
    'seeded',
    (f) => (f['bexar/expand01_add_visibility.sql'] = `SET lock_timeout = 0;\n${f['bexar/expand01_add_visibility.sql'] as string}`),
    /bexar\/expand01_add_visibility\.sql:1: SET lock_timeout is not allowed in a step: emc sets lock_timeout itself \(the lockTimeoutMs setting\)/,
  ),
  badCatalog(
    'SET LOCAL statement_timeout in a step',
    'migrated',
    (f) => (f['bexar/contract01_drop_is_public.sql'] = `SET LOCAL statement_timeout = 0;\n${f['bexar/contract01_drop_is_public.sql'] as string}`),
    /bexar\/contract01_drop_is_public\.sql:1: SET LOCAL statement_timeout is not allowed in a step/,
  ),
  badCatalog(
    'SET search_path in a step',
    'seeded',
    (f) => (f['bexar/expand02_add_owner_id.sql'] = `SET search_path TO app;\n${f['bexar/expand02_add_owner_id.sql'] as string}`),
    /bexar\/expand02_add_owner_id\.sql:1: SET search_path is not allowed in a step: .*use schema-qualified names/,
  ),
  badCatalog(
    'a psql \\set meta-command',
    'seeded',
    (f) => (f['bexar/expand01_add_visibility.sql'] = `\\set ON_ERROR_STOP on\n${f['bexar/expand01_add_visibility.sql'] as string}`),
    /bexar\/expand01_add_visibility\.sql:1:1: psql meta-command "\\set" is not SQL and emc does not run psql: emc has no variables/,
  ),
  badCatalog(
    'a psql \\i meta-command',
    'expanded',
    (f) => (f['bexar/expand04_more.sql'] = 'ALTER TABLE images ADD COLUMN title text;\n\\i more.sql\n'),
    /bexar\/expand04_more\.sql:2:1: psql meta-command "\\i" is not SQL .*make the included SQL a step of its own/,
  ),

  badCatalog(
    'a repeat-until-zero batch wrapped in SELECT count(*)',
    'expanded',
    (f) =>
      (f['bexar/migrate04_lower_names.sql'] =
        '-- emc:repeat-until-zero\n-- emc:pending SELECT count(*) FROM images WHERE name <> lower(name)\n' +
        'WITH u AS (UPDATE images SET name = lower(name) WHERE id = ANY (ARRAY(SELECT id FROM images WHERE name <> lower(name) LIMIT :batch_size)) RETURNING 1)\n' +
        'SELECT count(*) FROM u;\n'),
    /bexar\/migrate04_lower_names\.sql:3: the batch statement must be an INSERT, UPDATE, DELETE or MERGE .*found a SELECT/,
  ),
  badCatalog(
    'a pending query that deletes rows',
    'migrated',
    (f) =>
      (f['bexar/migrate01_backfill_visibility.sql'] = (f['bexar/migrate01_backfill_visibility.sql'] as string).replace(
        /-- emc:pending .*/,
        '-- emc:pending WITH d AS (DELETE FROM images WHERE visibility IS NULL RETURNING 1) SELECT count(*) FROM d',
      )),
    /bexar\/migrate01_backfill_visibility\.sql:2: "emc:pending" must only read, and this query writes: it holds a data-modifying DELETE/,
  ),
  badCatalog(
    'a pending query locking rows FOR UPDATE',
    'expanded',
    (f) =>
      (f['bexar/migrate02_backfill_owner_id.sql'] = (f['bexar/migrate02_backfill_owner_id.sql'] as string).replace(
        /-- emc:pending .*/,
        '-- emc:pending SELECT count(*) FROM (SELECT 1 FROM images WHERE owner_id IS NULL FOR UPDATE) x',
      )),
    /bexar\/migrate02_backfill_owner_id\.sql:2: "emc:pending" must only read, and this query writes: it locks rows/,
  ),
  badCatalog(
    'a pending query with SELECT INTO',
    'seeded',
    (f) =>
      (f['bexar/migrate03_trim_names.sql'] = (f['bexar/migrate03_trim_names.sql'] as string).replace(
        /-- emc:pending .*/,
        '-- emc:pending SELECT count(*) INTO untrimmed FROM images WHERE name <> btrim(name)',
      )),
    /bexar\/migrate03_trim_names\.sql:3: "emc:pending" must only read, and this query writes: SELECT INTO creates a table/,
  ),

  badCatalog(
    'an expand step dropping a type with CASCADE',
    'expanded',
    (f) => (f['bexar/expand04_drop_type.sql'] = 'DROP TYPE IF EXISTS image_kind CASCADE;\n'),
    /bexar\/expand04_drop_type\.sql:1: expand must not DROP TYPE \.\.\. CASCADE/,
  ),
  badCatalog(
    'an expand step deleting rows',
    'seeded',
    (f) => (f['bexar/expand04_purge.sql'] = "DELETE FROM images WHERE owner = 'tenant-7';\n"),
    /bexar\/expand04_purge\.sql:1: expand must not delete rows/,
  ),
  badCatalog(
    'an expand step changing a column type',
    'expanded',
    (f) => (f['bexar/expand04_narrow.sql'] = 'ALTER TABLE images ALTER COLUMN name TYPE varchar(3);\n'),
    /bexar\/expand04_narrow\.sql:1: expand must not change the type of column "name"/,
  ),
  badCatalog(
    'an expand DO block without an override',
    'seeded',
    (f) => (f['bexar/expand04_do.sql'] = "DO $$ BEGIN EXECUTE 'ALTER TABLE images DROP COLUMN owner'; END $$;\n"),
    /bexar\/expand04_do\.sql:1: expand cannot check what a DO block runs: .*emc:allow-destructive <reason>/,
  ),

  badCatalog(
    'a migrate step without a pending query before contract',
    'expanded',
    (f) => (f['bexar/migrate02_backfill_owner_id.sql'] = (f['bexar/migrate02_backfill_owner_id.sql'] as string).replace(/-- emc:pending .*\n/, '')),
    /bexar\/migrate02_backfill_owner_id\.sql: a migrate step of a release with contract steps needs "-- emc:pending <SELECT>"/,
  ),
  badCatalog(
    'a migrate step with both pending and no-pending',
    'migrated',
    (f) => (f['bexar/migrate03_trim_names.sql'] = `-- emc:no-pending names are trimmed on read\n${f['bexar/migrate03_trim_names.sql'] as string}`),
    /bexar\/migrate03_trim_names\.sql:1: choose "emc:pending" or "emc:no-pending", not both/,
  ),


  // The execution input, refused by "Start upgrade".
  { name: 'input: an unknown field', category: 'execution input', state: 'seeded', act: start({ target: 'bexar' }), error: 'InputError', message: /unknown field "target"/ },
  { name: 'input: stopAfter "contract"', category: 'execution input', state: 'seeded', act: start({ stopAfter: 'contract' }), error: 'InputError', message: /"stopAfter": .*"expand".*"migrate"/ },
  { name: 'input: an unknown target release', category: 'execution input', state: 'expanded', act: start({ targetRelease: 'cactus' }), error: 'InputError', message: /Unknown release "cactus": the migrations ship "bexar"/ },
  { name: 'input: an empty target release', category: 'execution input', state: 'seeded', act: start({ targetRelease: '' }), error: 'InputError', message: /"targetRelease": / },
  { name: 'input: batchSize 0', category: 'execution input', state: 'seeded', act: start({ settings: { batchSize: 0 } }), error: 'InputError', message: /"settings\.batchSize": / },
  { name: 'input: a lease ttl under a minute', category: 'execution input', state: 'expanded', act: start({ settings: { leaseTtlSeconds: 2 } }), error: 'InputError', message: /"settings\.leaseTtlSeconds": .*60/ },
  { name: 'input: a misspelt setting', category: 'execution input', state: 'seeded', act: start({ settings: { batchsize: 10 } }), error: 'InputError', message: /unknown field "settings\.batchsize"/ },
  { name: 'input: a setting given as a string', category: 'execution input', state: 'seeded', act: start({ settings: { lockTimeoutMs: '2000' } }), error: 'InputError', message: /"settings\.lockTimeoutMs": .*number/ },
  { name: 'input: a migrate budget over the Lambda limit', category: 'execution input', state: 'seeded', act: start({ settings: { migrateBudgetMs: 900_000 } }), error: 'InputError', message: /"settings\.migrateBudgetMs": / },
  { name: 'input: settings as an array', category: 'execution input', state: 'seeded', act: start({ settings: [] }), error: 'InputError', message: /"settings": / },
  { name: 'input: a bare string', category: 'execution input', state: 'seeded', act: start('bexar'), error: 'InputError', message: /"\(input\)": .*object/ },
  { name: 'input: restartSteps naming a step with nothing to restart', category: 'execution input', state: 'expanded', act: start({ restartSteps: ['bexar_migrate01'] }), error: 'InputError', message: /"restartSteps": bexar_migrate01 has no committed batch: nothing to restart/ },
  { name: 'input: an empty task definition', category: 'execution input', state: 'seeded', act: start({ newTaskDefinitions: { api: '' } }), error: 'InputError', message: /"newTaskDefinitions\.api": / },
  { name: 'input: a drain session pattern matching every session', category: 'execution input', state: 'seeded', act: start({ drain: { sessions: '%' } }), error: 'InputError', message: /"drain\.sessions": must be a LIKE pattern/ },
  { name: 'input: a drain session pattern for an ECS drain source', category: 'execution input', state: 'seeded', act: (ctx) => ctx.handlers(DEMO_MIGRATIONS, ECS_DRAIN).start({ executionArn: 'x', input: { drain: { sessions: 'orders-v41%' } } }), error: 'InputError', message: /"drain\.sessions": this state machine's drain source is ECS services/ },
  { name: 'input: ECS, expand done earlier, new release not named', category: 'execution input', state: 'expanded', act: (ctx) => ctx.handlers(DEMO_MIGRATIONS, ECS_DRAIN).start({ executionArn: 'x', input: {} }), error: 'InputError', message: /"newTaskDefinitions": expand already ran in an earlier execution.*"orders-api"/ },

  // The events the state machine passes between tasks.
  { name: 'event: start without the execution ARN', category: 'task event', state: 'seeded', act: (ctx) => ctx.handlers().start({ input: {} }), error: 'InputError', message: /Malformed task event: "executionArn"/ },
  { name: 'event: migrate without the plan', category: 'task event', state: 'expanded', act: (ctx) => ctx.handlers().migrate({ executionArn: 'x' }), error: 'InputError', message: /Malformed task event: "plan"/ },
  {
    name: 'event: contract with drainConfirmed as a string',
    category: 'task event',
    state: 'migrated',
    act: (ctx) => ctx.handlers().contract({ plan: planFor('x'), drainConfirmed: 'yes' }),
    error: 'InputError',
    message: /Malformed task event: "drainConfirmed"/,
  },

  // The state of the database, refused before any change.
  {
    name: 'database: an applied step changed since (drift)',
    category: 'database state',
    state: 'expanded',
    act: (ctx) => ctx.handlers(demoWith((f) => (f['bexar/expand02_add_owner_id.sql'] += '-- edited after it was applied\n'))).start({ executionArn: 'x', input: {} }),
    error: 'DriftError',
    message: /bexar_expand02: applied with checksum sha256:[0-9a-f]{64}, file now has sha256:[0-9a-f]{64}/,
  },
  {
    name: 'database: newer than the code (a step the code does not ship)',
    category: 'database state',
    state: 'completed',
    act: (ctx) => ctx.handlers(demoWith((f) => delete f['bexar/contract03_require_visibility.sql'])).start({ executionArn: 'x', input: {} }),
    error: 'DatabaseAheadError',
    message: /applied steps this code does not ship: bexar_contract03 \(database version bexar_expand03, bexar_contract03\)/,
  },
  {
    name: 'database: a step inserted before an applied one',
    category: 'database state',
    state: 'expanded',
    act: (ctx) =>
      ctx.handlers(demoWith((f) => (f['aardvark/expand01_add_notes.sql'] = 'ALTER TABLE images ADD COLUMN notes text;\n'), ['aardvark', 'bexar'])).start({ executionArn: 'x', input: {} }),
    error: 'CatalogOrderError',
    message: /Step aardvark_expand01 \(aardvark\/expand01_add_notes\.sql\) is not applied, but the later step bexar_expand03 is/,
  },
  {
    name: 'database: the lease is held by another execution',
    category: 'database state',
    state: 'expanded',
    setup: (ctx) => holdLease(ctx, 'arn:aws:states:us-east-1:123456789012:execution:Upgrade:other'),
    act: start({}),
    error: 'LeaseHeldError',
    message: /held by arn:aws:states:us-east-1:123456789012:execution:Upgrade:other until .*only one upgrade may run at a time/,
  },
  {
    name: 'database: a task of an execution that lost its lease',
    category: 'database state',
    state: 'expanded',
    setup: (ctx) => holdLease(ctx, 'newer-execution'),
    act: (ctx) => ctx.handlers().migrate({ plan: planFor('stale-execution'), callsBefore: 0 }),
    error: 'LeaseLostError',
    message: /Run stale-execution does not hold the upgrade lease: newer-execution holds it until /,
  },
  {
    name: 'database: contract before expand',
    category: 'database state',
    state: 'seeded',
    setup: (ctx) => holdLease(ctx, 'early'),
    act: (ctx) => ctx.handlers().contract({ plan: planFor('early'), drainConfirmed: true }),
    error: 'PhaseGateError',
    message: /Contract refused: expand steps are not applied yet: bexar_expand01, bexar_expand02, bexar_expand03; migrations are not finished: bexar_migrate01, bexar_migrate02, bexar_migrate03/,
  },
  {
    name: 'database: contract before migrations finished',
    category: 'database state',
    state: 'expanded',
    setup: (ctx) => holdLease(ctx, 'early'),
    act: (ctx) => ctx.handlers().contract({ plan: planFor('early'), drainConfirmed: true }),
    error: 'PhaseGateError',
    message: /Contract refused: migrations are not finished: bexar_migrate01, bexar_migrate02, bexar_migrate03\./,
  },
  {
    name: 'database: contract without the drain confirmed',
    category: 'database state',
    state: 'migrated',
    setup: (ctx) => holdLease(ctx, 'undrained'),
    act: (ctx) => ctx.handlers().contract({ plan: planFor('undrained'), drainConfirmed: false }),
    error: 'PhaseGateError',
    message: /Contract refused: the old release has not been confirmed drained/,
  },
  {
    name: 'database: contract while old-release rows wait to be migrated',
    category: 'database state',
    state: 'migrated',
    setup: async (ctx) => {
      await holdLease(ctx, 'late-rows');
      // A row written by the old release with no trigger firing (as a bulk load with triggers off would).
      const connection = await ctx.db.pool.connect();
      try {
        await connection.query(`SET session_replication_role = replica`);
        await connection.query(`INSERT INTO images (name, owner, is_public) VALUES ('late', 'tenant-7', true)`);
      } finally {
        await connection.query(`RESET session_replication_role`);
        connection.release();
      }
    },
    act: (ctx) => ctx.handlers().contract({ plan: planFor('late-rows'), drainConfirmed: true }),
    error: 'PhaseGateError',
    message: /bexar_migrate01 finished, but its pending query finds 1 rows still to migrate/,
  },
  {
    name: 'database: a migrate step edited after some of its batches committed',
    category: 'database state',
    state: 'expanded',
    setup: async (ctx) => {
      // As an earlier execution leaves it: one batch of bexar_migrate01 committed with the file as it was then.
      await ensureStateSchema(ctx.db.client);
      await ctx.db.pool.query(
        `INSERT INTO emc.migrate_progress (step_id, cursor, rows_done, keys_scanned, batches, checksum, strategy)
         VALUES ('bexar_migrate01', '100', 100, 100, 1, 'sha256:${'0'.repeat(64)}', 'keyset table=images key=id')`,
      );
    },
    act: start({}),
    error: 'MigrateStepChangedError',
    message: /bexar_migrate01 \(bexar\/migrate01_backfill_visibility\.sql\): 100 rows in 1 batches done with checksum sha256:0{64}, file now has sha256:[0-9a-f]{64}/,
  },
  {
    name: 'database: a keyset key that may be NULL',
    category: 'database state',
    state: 'expanded',
    setup: (ctx) => holdLease(ctx, 'x'),
    act: (ctx) =>
      ctx
        .handlers(demoWith((f) => (f['bexar/migrate01_backfill_visibility.sql'] = String(f['bexar/migrate01_backfill_visibility.sql']).replace('key=id', 'key=owner_id').replace('WHERE id BETWEEN', 'WHERE owner_id BETWEEN'))))
        .migrate({ plan: planFor('x'), callsBefore: 0 }),
    error: 'KeysetKeyError',
    message: /Step bexar_migrate01 cannot walk its keyset \(bexar\/migrate01_backfill_visibility\.sql\): key column "owner_id" in "images" .*may be NULL/,
  },
  {
    name: 'database: a keyset key of a type without an exact order (boolean)',
    category: 'database state',
    state: 'expanded',
    setup: (ctx) => holdLease(ctx, 'x'),
    act: (ctx) =>
      ctx
        .handlers(demoWith((f) => (f['bexar/migrate01_backfill_visibility.sql'] = String(f['bexar/migrate01_backfill_visibility.sql']).replace('key=id', 'key=is_public').replace('WHERE id BETWEEN', 'WHERE is_public BETWEEN'))))
        .migrate({ plan: planFor('x'), callsBefore: 0 }),
    error: 'KeysetKeyError',
    message: /key column "is_public" in "images" .*has type boolean, which a keyset cannot walk/,
  },
  {
    name: 'database: migrate before expand',
    category: 'database state',
    state: 'seeded',
    setup: (ctx) => holdLease(ctx, 'eager'),
    act: (ctx) => ctx.handlers().migrate({ plan: planFor('eager'), callsBefore: 0 }),
    error: 'PhaseGateError',
    message: /Migrate refused: expand steps are not applied yet: bexar_expand01, bexar_expand02, bexar_expand03/,
  },

  // The construct's props, refused at synth (a database is snapshotted all the same). Most prop checks are pinned in
  // state-machine-template.test; these few complete the table.
  { name: 'props: a lease ttl under a minute', category: 'construct props', state: 'seeded', act: () => synth({ batchSettings: { leaseTtl: Duration.seconds(10) } }), error: 'ConstructPropsError', message: /batchSettings: leaseTtl: / },
  { name: 'props: a drain poll interval of 0', category: 'construct props', state: 'seeded', act: () => synth({ drainPollInterval: Duration.seconds(0) }), error: 'ConstructPropsError', message: /drainPollInterval must be from 1 second to 1 hour/ },
  { name: 'props: a drain pattern matching every session', category: 'construct props', state: 'seeded', act: () => synth({ drainSource: DrainSource.databaseSessions('%') }), error: 'ConstructPropsError', message: /DrainSource\.databaseSessions\(\) needs a LIKE pattern .*got "%"/ },
  { name: 'props: an empty application role for the session drain', category: 'construct props', state: 'seeded', act: () => synth({ drainSource: DrainSource.databaseSessions('orders-api/v41%', { applicationRole: ' ' }) }), error: 'ConstructPropsError', message: /applicationRole must be a role name/ },
  {
    name: 'props: a migrations directory with a bad file',
    category: 'construct props',
    state: 'seeded',
    act: () => synth({ migrationsDirectory: demoWith((f) => (f['bexar/expand04_rename.sql'] = 'ALTER TABLE images RENAME COLUMN owner TO owner_name;\n')) }),
    error: 'ConstructPropsError',
    message: /migrationsDirectory .*: The migrations catalog has 1 problem:\n {2}- bexar\/expand04_rename\.sql:1: expand must not rename a column/,
  },
];

const templates = new Map<DatabaseState, DatabaseTemplate>();
let catalog: Catalog;
beforeAll(async () => {
  catalog = await loadCatalog(DEMO_MIGRATIONS);
  const prepare = async (db: TestDatabase, state: DatabaseState) => {
    await seedDemoDatabase(db.client, 300);
    if (state === 'seeded') return;
    const ctx = { client: db.client, runId: 'earlier-run', settings: resolveSettings({ batchPauseMs: 0, batchSize: 100 }) };
    await ensureStateSchema(db.client);
    await acquireLease(db.client, ctx.runId, 900);
    await expand(ctx, catalog);
    if (state !== 'expanded') await migrateToEnd(ctx, catalog);
    if (state === 'completed') await contract(ctx, catalog, undefined, { drainConfirmed: true });
    await releaseLease(db.client, ctx.runId);
  };
  for (const state of ['seeded', 'expanded', 'migrated', 'completed'] as const) {
    templates.set(state, await createTemplate((db) => prepare(db, state)));
  }
});
afterAll(async () => {
  await recordFigures('bad input', 'test/reliability-bad-input.test.ts', [
    {
      check: 'Bad inputs refused with a typed error and a message naming the file, step or field, database unchanged',
      tried: CASES.length,
      passed: CASES.length - failedCases.size,
      detail: [...new Set(CASES.map((c) => c.category))]
        .map((category) => `${category} ${CASES.filter((c) => c.category === category).length}`)
        .join(', '),
    },
  ]);
  for (const template of templates.values()) await template.drop();
});
const failedCases = new Set<string>(CASES.map((c) => c.name));

describe('bad input is refused, named, and changes nothing', () => {
  it('covers at least 50 distinct cases across catalog, input, props, events and database state', () => {
    expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
    expect(CASES.length).toBeGreaterThanOrEqual(50);
    expect(new Set(CASES.map((c) => c.category))).toEqual(
      new Set(['catalog', 'execution input', 'task event', 'construct props', 'database state']),
    );
  });

  it.each(CASES)('$name', async (badInput) => {
    const db = await templates.get(badInput.state)!.clone();
    const clients: PgSqlClient[] = [];
    const ctx: Context = {
      db,
      handlers: (migrations = DEMO_MIGRATIONS, drain = SESSION_DRAIN) => {
        const client = new PgSqlClient(db.url);
        clients.push(client);
        const deps = { sql: async () => client, catalog: once(() => loadCatalog(migrations)) };
        return {
          start: createStartTask({ ...deps, settingsDefaults: { batchPauseMs: 0 }, drainSource: drain }),
          migrate: createMigrateTask(deps),
          contract: createContractTask(deps),
        };
      },
    };
    try {
      await badInput.setup?.(ctx);
      const before = await dumpDatabase(db.pool, ['images']);

      const error = await rejectionOf(Promise.resolve().then(() => badInput.act(ctx)));

      if (typeof badInput.error === 'string') expect(error.name).toBe(badInput.error);
      else expect(error.name).toMatch(badInput.error);
      // A handler throws the failure record (commons/task.ts); the engine's own functions throw the typed error.
      expect(error instanceof TaskFailedError ? error.record.message : error.message).toMatch(badInput.message);
      expect(await dumpDatabase(db.pool, ['images'])).toEqual(before);
      failedCases.delete(badInput.name);
    } finally {
      for (const client of clients) await client.close();
      await db.drop();
    }
  });
});
