import { App, Stack } from 'aws-cdk-lib';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT } from '../bin/cli/exit-codes.ts';
import { formatLintReport, lintMigrations } from '../bin/cli/lint.ts';
import { CatalogError, LintToolUnavailableError } from '../lambdas/core/errors.ts';
import { EMC_LOCK_RULES, LOCK_RULES } from '../lambdas/core/lint/lock-rules.ts';
import { squawkBinary } from '../lambdas/core/lint/squawk.ts';
import { ConstructPropsError } from '../lib/construct-props-error.ts';
import { DrainSource } from '../lib/drain-source.ts';
import { ExpandMigrateContractUpgrade } from '../lib/expand-migrate-contract-upgrade.ts';
import { DEMO_MIGRATIONS, writeMigrations } from './support/catalog-fixtures.ts';

// Every case runs the real squawk binary (squawk-cli's optional dependency) on real files.
const ROOT = join(import.meta.dirname, '..');
const TSX = join(ROOT, 'node_modules/.bin/tsx');
const COOKBOOK = join(ROOT, 'docs/cookbook');

const ADD = 'ALTER TABLE t ADD COLUMN c text;\n';

/** A release `r1` with the given step files, and the expand step a contract-only release needs nothing of. */
function release(files: Record<string, string>): string {
  return writeMigrations(Object.fromEntries(Object.entries(files).map(([name, sql]) => [`r1/${name}`, sql])), ['r1']);
}

/** The findings as [file, line, rule], in report order. */
async function findings(files: Record<string, string>): Promise<[string, number, string][]> {
  const report = await lintMigrations(release(files));
  return report.findings.map((f) => [f.file, f.line, f.rule]);
}

function emc(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(TSX, [join(ROOT, 'bin/emc.ts'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('emc lint keeps the lock-safety findings that matter in each phase', () => {
  it.each([
    ['a plain CREATE INDEX in expand', { 'expand01_x.sql': 'CREATE INDEX t_c_idx ON t (c);\n' }, [['r1/expand01_x.sql', 1, 'require-concurrent-index-creation']]],
    ['a plain CREATE INDEX in contract', { 'expand01_x.sql': ADD, 'contract01_x.sql': 'CREATE INDEX t_c_idx ON t (c);\n' }, [['r1/contract01_x.sql', 1, 'require-concurrent-index-creation']]],
    ['a type change in contract', { 'expand01_x.sql': ADD, 'contract01_x.sql': 'ALTER TABLE t ALTER COLUMN c TYPE varchar(20);\n' }, [['r1/contract01_x.sql', 1, 'changing-column-type']]],
    ['a CHECK without NOT VALID in expand', { 'expand01_x.sql': `${ADD}ALTER TABLE t ADD CONSTRAINT t_c_short CHECK (length(c) < 10);\n` }, [['r1/expand01_x.sql', 2, 'constraint-missing-not-valid']]],
    [
      'a NOT VALID CHECK validated in the transaction that added it',
      { 'expand01_x.sql': ADD, 'contract01_x.sql': 'ALTER TABLE t ADD CONSTRAINT t_c_present CHECK (c IS NOT NULL) NOT VALID;\nALTER TABLE t VALIDATE CONSTRAINT t_c_present;\n' },
      [
        ['r1/contract01_x.sql', 2, 'constraint-missing-not-valid'],
        ['r1/contract01_x.sql', 2, 'validate-constraint-after-other-statements'],
      ],
    ],
    [
      // emc's own rule: squawk sees each statement, not that the scan runs under the DROP's ACCESS EXCLUSIVE lock.
      'a VALIDATE CONSTRAINT after a DROP COLUMN of another table, in one transaction',
      { 'expand01_x.sql': ADD, 'contract01_x.sql': 'ALTER TABLE u DROP COLUMN old;\nALTER TABLE t VALIDATE CONSTRAINT t_c_present;\n' },
      [['r1/contract01_x.sql', 2, 'validate-constraint-after-other-statements']],
    ],
    [
      'a foreign key without NOT VALID in expand',
      { 'expand01_x.sql': 'ALTER TABLE t ADD CONSTRAINT t_u_fk FOREIGN KEY (u) REFERENCES u (id);\n' },
      [['r1/expand01_x.sql', 1, 'constraint-missing-not-valid'], ['r1/expand01_x.sql', 1, 'adding-foreign-key-constraint']],
    ],
    ['a volatile default in expand', { 'expand01_x.sql': 'ALTER TABLE t ADD COLUMN token uuid DEFAULT gen_random_uuid();\n' }, [['r1/expand01_x.sql', 1, 'adding-field-with-default']]],
    ['a NOT NULL column without a default in expand', { 'expand01_x.sql': 'ALTER TABLE t ADD COLUMN c text NOT NULL;\n' }, [['r1/expand01_x.sql', 1, 'adding-required-field']]],
    ['dropping NOT NULL in expand (the old release may not expect NULL)', { 'expand01_x.sql': 'ALTER TABLE t ALTER COLUMN c DROP NOT NULL;\n' }, [['r1/expand01_x.sql', 1, 'ban-drop-not-null']]],
    ['a rename in contract', { 'expand01_x.sql': ADD, 'contract01_x.sql': 'ALTER TABLE t RENAME COLUMN c TO d;\n' }, [['r1/contract01_x.sql', 1, 'renaming-column']]],
    [
      'a no-transaction step that is not safe to re-run',
      { 'expand01_x.sql': ADD, 'contract01_x.sql': '-- emc:no-transaction\nDROP INDEX CONCURRENTLY t_c_idx;\n' },
      [['r1/contract01_x.sql', 2, 'prefer-robust-stmts']],
    ],
  ])('%s', async (_, files, expected) => {
    expect(await findings(files)).toEqual(expected);
  });

  it.each([
    // The engine sets lock_timeout and statement_timeout and runs the step in one transaction.
    ['an ADD COLUMN (no timeout or transaction noise)', { 'expand01_x.sql': 'ALTER TABLE t ADD COLUMN c text DEFAULT \'x\';\n' }],
    ['dropping NOT NULL in contract, once the old release is gone', { 'expand01_x.sql': ADD, 'contract01_x.sql': 'ALTER TABLE t ALTER COLUMN c DROP NOT NULL;\n' }],
    ['dropping a column in contract, where columns are dropped', { 'expand01_x.sql': ADD, 'contract01_x.sql': 'ALTER TABLE t DROP COLUMN old;\n' }],
    ['a VALIDATE CONSTRAINT in a step of its own', { 'expand01_x.sql': ADD, 'contract01_x.sql': 'ALTER TABLE t VALIDATE CONSTRAINT t_c_present;\n' }],
    [
      'VALIDATE CONSTRAINTs first in the step, then SET NOT NULL using them',
      {
        'expand01_x.sql': ADD,
        'contract01_x.sql':
          'ALTER TABLE t VALIDATE CONSTRAINT t_c_present;\nALTER TABLE t VALIDATE CONSTRAINT t_c_short;\nALTER TABLE t ALTER COLUMN c SET NOT NULL;\nALTER TABLE t DROP CONSTRAINT t_c_present;\n',
      },
    ],
    // emc itself rebuilds an invalid index left by a crash, so the named build needs no IF NOT EXISTS.
    ['a named CREATE INDEX CONCURRENTLY in a no-transaction step', { 'expand01_x.sql': '-- emc:no-transaction\nCREATE INDEX CONCURRENTLY t_c_idx ON t (c);\n' }],
    [
      'a migrate step with :from_key placeholders',
      {
        'expand01_x.sql': ADD,
        'migrate01_x.sql': '-- emc:keyset table=t key=id\n-- emc:pending SELECT count(*) FROM t WHERE c IS NULL\nUPDATE t SET c = \'x\' WHERE id BETWEEN :from_key AND :to_key AND c IS NULL;\n',
        'contract01_x.sql': 'ALTER TABLE t DROP COLUMN old;\n',
      },
    ],
    ['style rules (varchar, int keys, timestamp)', { 'expand01_x.sql': 'CREATE TABLE s (id int PRIMARY KEY, name varchar(20), at timestamp);\n' }],
  ])('reports nothing for %s', async (_, files) => {
    expect(await findings(files)).toEqual([]);
  });

  it('says where, which rule, why in this phase and how to fix or allow it', async () => {
    const run = emc('lint', '--migrations', release({ 'expand01_x.sql': '-- The new release looks t up by c.\nCREATE INDEX t_c_idx ON t (c);\n' }));

    expect(run.stdout).toContain('1 lock-safety finding in 1 file:');
    expect(run.stdout).toContain('r1/expand01_x.sql:2: require-concurrent-index-creation: During normal index creation, table updates are blocked');
    expect(run.stdout).toContain('in expand: CREATE INDEX without CONCURRENTLY blocks writes to the table while it builds');
    expect(run.stdout).toContain('if it is safe here, say why in the file: -- emc:allow-lock require-concurrent-index-creation <reason>');
    expect(run.status).toBe(EXIT.lintFindings);
  });

  it('checks a rename in expand twice: emc refuses it, and with emc:allow-destructive squawk still does', async () => {
    const rename = 'ALTER TABLE t RENAME COLUMN c TO d;\n';
    await expect(lintMigrations(release({ 'expand01_x.sql': rename }))).rejects.toThrow(/r1\/expand01_x\.sql:1: expand must not rename a column/);

    const allowed = { 'expand01_x.sql': `-- emc:allow-destructive no release reads c yet\n${rename}` };
    expect(await findings(allowed)).toEqual([['r1/expand01_x.sql', 2, 'renaming-column']]);
  });
});

describe('-- emc:allow-lock <rule> <reason>', () => {
  const INDEX = 'CREATE INDEX t_c_idx ON t (c);\n';

  it('allows that rule in that file, and the report keeps the reason', async () => {
    const reason = 't holds twelve rows; the build takes milliseconds';
    const report = await lintMigrations(release({ 'expand01_x.sql': `-- emc:allow-lock require-concurrent-index-creation ${reason}\n${INDEX}` }));

    expect(report.findings).toEqual([]);
    expect(report.allowed).toMatchObject([{ file: 'r1/expand01_x.sql', line: 2, rule: 'require-concurrent-index-creation', reason }]);
  });

  it('allows nothing else: another rule in the same file is still a finding', async () => {
    const files = {
      'expand01_x.sql': `-- emc:allow-lock require-concurrent-index-creation t holds twelve rows\n${INDEX}ALTER TABLE t ADD COLUMN token uuid DEFAULT gen_random_uuid();\n`,
    };
    expect(await findings(files)).toEqual([['r1/expand01_x.sql', 3, 'adding-field-with-default']]);
  });

  it.each([
    ['without a reason', '-- emc:allow-lock require-concurrent-index-creation\n', /r1\/expand01_x\.sql:1: "emc:allow-lock require-concurrent-index-creation" needs a reason after the rule/],
    ['naming no rule', '-- emc:allow-lock no-such-rule because\n', /r1\/expand01_x\.sql:1: "emc:allow-lock" names no lock-safety rule emc knows: "no-such-rule"/],
    ['naming a rule emc does not report in the phase', '-- emc:allow-lock require-lock-timeout emc sets it\n', /"emc:allow-lock require-lock-timeout" allows nothing: emc does not report require-lock-timeout in expand steps/],
    ['twice for one rule', '-- emc:allow-lock require-concurrent-index-creation small\n-- emc:allow-lock require-concurrent-index-creation tiny\n', /r1\/expand01_x\.sql:2: "emc:allow-lock require-concurrent-index-creation" appears more than once \(line 1\)/],
  ])('makes the catalog invalid %s', async (_, directive, message) => {
    const linted = lintMigrations(release({ 'expand01_x.sql': `${directive}${INDEX}` }));
    await expect(linted).rejects.toBeInstanceOf(CatalogError);
    await expect(linted).rejects.toThrow(message);
  });

  it('makes the catalog invalid when it allows a rule the file does not break', async () => {
    const linted = lintMigrations(release({ 'expand01_x.sql': `-- emc:allow-lock changing-column-type just in case\n${ADD}` }));
    await expect(linted).rejects.toThrow(/r1\/expand01_x\.sql:1: "emc:allow-lock changing-column-type" allows nothing: squawk reports no changing-column-type finding in this file/);
  });

  it("allows emc's own rule as it allows squawk's", async () => {
    const reason = 'u is empty until the new release ships';
    const step = `-- emc:allow-lock validate-constraint-after-other-statements ${reason}\nALTER TABLE u DROP COLUMN old;\nALTER TABLE t VALIDATE CONSTRAINT t_c_present;\n`;
    const report = await lintMigrations(release({ 'expand01_x.sql': ADD, 'contract01_x.sql': step }));

    expect(report.findings).toEqual([]);
    expect(report.allowed).toMatchObject([{ file: 'r1/contract01_x.sql', line: 3, rule: 'validate-constraint-after-other-statements', reason }]);
  });

  it('is the only override: a squawk-ignore comment in the file is not obeyed', async () => {
    expect(await findings({ 'expand01_x.sql': `-- squawk-ignore require-concurrent-index-creation\n${INDEX}` })).toEqual([
      ['r1/expand01_x.sql', 2, 'require-concurrent-index-creation'],
    ]);
  });
});

describe('the catalogs this repository ships lint clean', () => {
  const cookbook = readdirSync(COOKBOOK).map((name) => join(COOKBOOK, name, 'migrations'));

  it.each([DEMO_MIGRATIONS, ...cookbook])('%s', async (directory) => {
    const report = await lintMigrations(directory);
    expect(report.findings).toEqual([]);
    // An allowed finding would need a reason in the file; none of these needs one.
    expect(report.allowed).toEqual([]);
  });
});

describe('the emc lint binary exits with its documented codes', () => {
  it('exits 0 on a clean catalog', () => {
    const run = emc('lint', '--migrations', DEMO_MIGRATIONS);
    expect(run.stdout).toContain('9 steps, no lock-safety finding.');
    expect(run.status).toBe(EXIT.ok);
  });

  it('exits 9 on an invalid catalog, with the catalog problems', () => {
    const run = emc('lint', '--migrations', release({ 'expand01_x.sql': 'ALTER TABLE t ADD COLUMN ;\n' }));
    expect(run.stderr).toContain('r1/expand01_x.sql:1');
    expect(run.status).toBe(EXIT.catalogInvalid);
  });

  it('exits 12 on findings, and --json lists them', () => {
    const run = emc('lint', '--json', '--migrations', release({ 'expand01_x.sql': 'CREATE INDEX t_c_idx ON t (c);\n' }));
    expect(JSON.parse(run.stdout)).toMatchObject({ ok: false, findings: [{ file: 'r1/expand01_x.sql', line: 1, phase: 'expand', rule: 'require-concurrent-index-creation' }] });
    expect(run.status).toBe(EXIT.lintFindings);
  });

  it('exits 13 when squawk cannot run, and never passes without it', async () => {
    const run = emc('lint', '--migrations', DEMO_MIGRATIONS, '--squawk', '/nonexistent/squawk');
    expect(run.stderr).toContain('squawk (/nonexistent/squawk) did not run');
    expect(run.status).toBe(EXIT.lintUnavailable);

    await expect(lintMigrations(DEMO_MIGRATIONS, { binary: '/bin/false' })).rejects.toBeInstanceOf(LintToolUnavailableError);
  });
});

describe('cdk synth runs the same lint', () => {
  function synth(migrationsDirectory: string): () => void {
    return () => {
      const stack = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Test', {
        env: { account: '123456789012', region: 'us-east-1' },
      });
      new ExpandMigrateContractUpgrade(stack, 'Upgrade', {
        clusterArn: 'arn:aws:rds:us-east-1:123456789012:cluster:orders',
        secret: secretsmanager.Secret.fromSecretCompleteArn(stack, 'Secret', 'arn:aws:secretsmanager:us-east-1:123456789012:secret:orders-db-AbCdEf'),
        databaseName: 'orders',
        migrationsDirectory,
        drainSource: DrainSource.databaseSessions('orders-api/v41%'),
      });
    };
  }

  it('refuses a finding with the message emc lint prints, naming the migrationsDirectory prop', async () => {
    const directory = release({ 'expand01_x.sql': ADD, 'contract01_x.sql': 'ALTER TABLE t ALTER COLUMN c TYPE varchar(20);\n' });
    const printed = formatLintReport(await lintMigrations(directory)).split('\n').slice(0, -1).join('\n');

    expect(synth(directory)).toThrow(ConstructPropsError);
    expect(synth(directory)).toThrow(`migrationsDirectory ${directory}: ${printed}`);
  });

  it('refuses a malformed emc:allow-lock as a catalog problem', () => {
    const directory = release({ 'expand01_x.sql': `-- emc:allow-lock require-concurrent-index-creation\nCREATE INDEX t_c_idx ON t (c);\n` });
    expect(synth(directory)).toThrow(/migrationsDirectory .*r1\/expand01_x\.sql:1: "emc:allow-lock require-concurrent-index-creation" needs a reason/s);
  });

  it('synthesizes a catalog whose finding is allowed with a reason', () => {
    const directory = release({ 'expand01_x.sql': `-- emc:allow-lock require-concurrent-index-creation t holds twelve rows\nCREATE INDEX t_c_idx ON t (c);\n` });
    expect(synth(directory)).not.toThrow();
  });
});

describe('the rule table', () => {
  it('names only rules of the pinned squawk (its --exclude refuses any other name)', () => {
    // squawk reports these two but takes neither in --exclude.
    const names = Object.keys(LOCK_RULES).filter((rule) => rule !== 'syntax-error' && rule !== 'unused-ignore');
    const run = spawnSync(squawkBinary(), [`--exclude=${names.join(',')}`, join(DEMO_MIGRATIONS, 'bexar/expand01_add_visibility.sql')], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });
});

describe('docs/operators.md', () => {
  it('lists every squawk rule and every rule of emc\'s own with the phases emc reports it in, or why it does not', () => {
    const doc = readFileSync(join(ROOT, 'docs/operators.md'), 'utf8');
    const section = doc.slice(doc.indexOf('### Lock-safety lint'), doc.indexOf('### Keyset keys'));
    for (const [rule, where] of Object.entries({ ...LOCK_RULES, ...EMC_LOCK_RULES })) {
      const phases = (['expand', 'migrate', 'contract'] as const).filter((phase) => where[phase]);
      if (phases.length > 0) expect(section, rule).toContain(`| \`${rule}\` | ${phases.join(', ')} |`);
      if (where.off) expect(section, rule).toContain(`| \`${rule}\` | ${where.off} |`);
    }
  });
});
