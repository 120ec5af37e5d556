import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCatalog } from '../lambdas/core/catalog/load-catalog.ts';
import { writeMigrations } from './support/catalog-fixtures.ts';
import { runEmc } from './support/cli-harness.ts';

/** A migrations directory with release bexar's first expand step. */
function migrations(): string {
  return writeMigrations({ 'bexar/expand01_add_visibility.sql': 'ALTER TABLE images ADD COLUMN visibility text;\n' });
}

const emcNew = (dir: string, ...args: string[]) => runEmc(['new', ...args, '--migrations', dir]);

/** Fills in a template as its reader would: uncomment the directives named, then write the SQL below. */
function fillIn(path: string, directives: Record<string, string>, sql: string): void {
  let text = readFileSync(path, 'utf8');
  for (const [name, argument] of Object.entries(directives)) {
    text = text.replace(new RegExp(`^-- -- emc:${name}\\b.*$`, 'm'), `-- emc:${name}${argument ? ` ${argument}` : ''}`);
  }
  writeFileSync(path, `${text}${sql}`);
}

describe('emc new', () => {
  it('creates the first step of a new release, appends the release to releases.json, and the filled-in file loads', async () => {
    const dir = migrations();
    const run = await emcNew(dir, 'cactus', 'expand', 'add', 'title');
    expect(run.exitCode).toBe(0);
    const path = join(dir, 'cactus/expand01_add_title.sql');
    expect(run.stdout).toContain(`Created ${path} (cactus_expand01)`);
    expect(run.stdout).toContain('Added release cactus to');
    expect(JSON.parse(readFileSync(join(dir, 'releases.json'), 'utf8'))).toEqual({ releases: ['bexar', 'cactus'] });
    const template = readFileSync(path, 'utf8');
    // Expand's directives, and only those, each commented out.
    expect(template).toMatch(/^-- -- emc:no-transaction$/m);
    expect(template).toMatch(/^-- -- emc:allow-destructive <reason>$/m);
    expect(template).not.toMatch(/emc:(keyset|pending|batch-size)/);

    // The template as written holds no statement: the catalog refuses it rather than deploy an empty step.
    await expect(loadCatalog(dir)).rejects.toThrow(/cactus\/expand01_add_title\.sql: empty file/);
    fillIn(path, { 'no-transaction': '' }, 'CREATE INDEX CONCURRENTLY images_title_idx ON images (title);\n');
    const catalog = await loadCatalog(dir);
    expect(catalog.releases).toEqual(['bexar', 'cactus']);
    expect(catalog.steps.find((s) => s.id === 'cactus_expand01')).toMatchObject({ kind: 'statement-by-statement', file: 'cactus/expand01_add_title.sql' });
  });

  it('numbers the next file of the phase, and a migrate template filled in loads with its strategy and pending query', async () => {
    const dir = migrations();
    expect((await emcNew(dir, 'bexar', 'expand', 'add_owner id')).exitCode).toBe(0);
    expect(existsSync(join(dir, 'bexar/expand02_add_owner_id.sql'))).toBe(true);
    appendFileSync(join(dir, 'bexar/expand02_add_owner_id.sql'), 'ALTER TABLE images ADD COLUMN owner_id text;\n');
    expect((await emcNew(dir, 'bexar', 'contract', 'drop', 'is', 'public')).exitCode).toBe(0);
    appendFileSync(join(dir, 'bexar/contract01_drop_is_public.sql'), 'ALTER TABLE images DROP COLUMN is_public;\n');

    const run = await emcNew(dir, 'bexar', 'migrate', 'backfill', 'visibility', '--json');
    expect(run.exitCode).toBe(0);
    expect(run.json()).toMatchObject({ file: 'bexar/migrate01_backfill_visibility.sql', stepId: 'bexar_migrate01', releaseAdded: false });
    const path = join(dir, 'bexar/migrate01_backfill_visibility.sql');
    const template = readFileSync(path, 'utf8');
    for (const name of ['keyset', 'repeat-until-zero', 'batch-size', 'pending', 'no-pending']) expect(template).toMatch(new RegExp(`^-- -- emc:${name}\\b`, 'm'));
    expect(template).not.toMatch(/emc:(no-transaction|allow-destructive)/);
    fillIn(
      path,
      { keyset: 'table=images key=id', 'batch-size': '500', pending: 'SELECT count(*) FROM images WHERE visibility IS NULL' },
      "UPDATE images SET visibility = CASE WHEN is_public THEN 'public' ELSE 'private' END\nWHERE id BETWEEN :from_key AND :to_key AND visibility IS NULL;\n",
    );
    const step = (await loadCatalog(dir)).steps.find((s) => s.id === 'bexar_migrate01');
    expect(step).toMatchObject({ kind: 'keyset', keys: ['id'], batchSize: 500, pendingSql: expect.stringContaining('visibility IS NULL') });
    expect(JSON.parse(readFileSync(join(dir, 'releases.json'), 'utf8'))).toEqual({ releases: ['bexar'] });
  });

  it('warns when the release is not the newest', async () => {
    const dir = migrations();
    await emcNew(dir, 'cactus', 'expand', 'add', 'title');
    const run = await emcNew(dir, 'bexar', 'expand', 'add', 'owner');
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain("Warning: release cactus comes after bexar; a database that already ran cactus's expand steps refuses this one as out of order.");
  });

  it('starts a migrations directory that does not exist yet', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'emc-new-')), 'migrations');
    expect((await emcNew(dir, 'v1', 'expand', 'create', 'orders')).exitCode).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, 'releases.json'), 'utf8'))).toEqual({ releases: ['v1'] });
    expect(readdirSync(join(dir, 'v1'))).toEqual(['expand01_create_orders.sql']);
  });

  it.each([
    [['Bad_Name!', 'expand', 'x'], 'Bad release name "Bad_Name!"'],
    [['cactus', 'backfill', 'x'], 'Bad phase "backfill": expected one of expand, migrate, contract.'],
    [['cactus', 'expand', 'Add', 'title-x'], 'Bad words in the step name: "Add", "title-x"; words are lowercase a-z and 0-9.'],
    [['bexar', 'expand', 'add', 'visibility'], 'bexar/expand01_add_visibility.sql already exists'],
  ])('refuses %j with exit 2 and changes nothing', async (args, message) => {
    const dir = migrations();
    const before = readFileSync(join(dir, 'releases.json'), 'utf8');
    const run = await emcNew(dir, ...args);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain(message);
    expect(readFileSync(join(dir, 'releases.json'), 'utf8')).toBe(before);
    expect(readdirSync(dir).sort()).toEqual(['bexar', 'releases.json']);
    expect(readdirSync(join(dir, 'bexar'))).toEqual(['expand01_add_visibility.sql']);
  });

  it('refuses a release folder releases.json does not list (exit 2) and an invalid releases.json (exit 9)', async () => {
    const dir = writeMigrations({ 'bexar/expand01_a.sql': 'SELECT 1;\n', 'cactus/expand01_b.sql': 'SELECT 1;\n' }, ['bexar']);
    const unlisted = await emcNew(dir, 'cactus', 'expand', 'c');
    expect(unlisted.exitCode).toBe(2);
    expect(unlisted.stderr).toContain('exists but releases.json does not list "cactus"');
    expect(readdirSync(join(dir, 'cactus'))).toEqual(['expand01_b.sql']);

    writeFileSync(join(dir, 'releases.json'), '{"releases": [');
    const invalid = await emcNew(dir, 'bexar', 'expand', 'c');
    expect(invalid.exitCode).toBe(9);
    expect(invalid.stderr).toContain('releases.json: not valid JSON');
    expect(readdirSync(join(dir, 'bexar'))).toEqual(['expand01_a.sql']);
  });
});
