import { App, Stack } from 'aws-cdk-lib';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { describe, expect, it } from 'vitest';
import { loadCatalog } from '../lambdas/core/catalog/load-catalog.ts';
import { DATA_API_MAX_SQL_LENGTH } from '../lambdas/core/catalog/sql-text-limit.ts';
import { CatalogError } from '../lambdas/core/errors.ts';
import { ConstructPropsError } from '../lib/construct-props-error.ts';
import { DrainSource } from '../lib/drain-source.ts';
import { ExpandMigrateContractUpgrade } from '../lib/expand-migrate-contract-upgrade.ts';
import { writeMigrations } from './support/catalog-fixtures.ts';

/** An INSERT of exactly `length` characters (`length` >= 40). */
function insertOfLength(length: number): string {
  const head = "INSERT INTO t (c) VALUES ('";
  const tail = "')";
  return `${head}${'x'.repeat(length - head.length - tail.length)}${tail}`;
}

/** A SELECT of exactly `length` characters, for an `emc:pending` line. */
function pendingOfLength(length: number): string {
  const head = "SELECT count(*) FROM t WHERE note <> '";
  return `${head}${'z'.repeat(length - head.length - 1)}'`;
}

describe('a statement longer than one RDS Data API call takes is a catalog problem, naming the file and line', () => {
  it('accepts a statement of exactly 65,536 characters and refuses one of 65,537, with every other problem', async () => {
    expect(insertOfLength(DATA_API_MAX_SQL_LENGTH)).toHaveLength(65_536);
    const directory = writeMigrations({
      'a/expand01_at_limit.sql': `${insertOfLength(DATA_API_MAX_SQL_LENGTH)};\n`,
      'a/expand02_over.sql': `ALTER TABLE t ADD COLUMN d int;\n-- the seed data\n${insertOfLength(DATA_API_MAX_SQL_LENGTH + 1)};\n`,
      'a/expand03_bad_name.sql': 'ALTER TABLE t ADD COLUMN ;\n',
    });
    const error = await loadCatalog(directory).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CatalogError);
    const problems = (error as CatalogError).problems;
    expect(problems.map((p) => [p.file, p.line])).toEqual([
      ['a/expand02_over.sql', 3],
      ['a/expand03_bad_name.sql', 1],
    ]);
    expect(problems[0]!.message).toMatch(/the statement is 65537 characters long; one RDS Data API call takes at most 65536/);
  });

  it('measures the batch statement and the "emc:pending" query of a migrate step', async () => {
    const batch = `UPDATE t SET c = 1 WHERE id BETWEEN :from_key AND :to_key AND note <> '${'y'.repeat(DATA_API_MAX_SQL_LENGTH)}'`;
    const directory = writeMigrations({
      'a/migrate01_long_batch.sql': `-- emc:keyset table=t key=id\n${batch};\n`,
      'a/migrate02_long_pending.sql':
        `-- emc:keyset table=t key=id\n-- emc:pending ${pendingOfLength(DATA_API_MAX_SQL_LENGTH + 10)}\n` +
        'UPDATE t SET c = 1 WHERE id BETWEEN :from_key AND :to_key;\n',
    });
    const error = (await loadCatalog(directory).catch((e: unknown) => e)) as CatalogError;
    expect(error).toBeInstanceOf(CatalogError);
    expect(error.problems.map((p) => [p.file, p.line, p.message.split(' is ')[0]])).toEqual([
      ['a/migrate01_long_batch.sql', 2, 'the statement'],
      ['a/migrate02_long_pending.sql', 2, 'the "emc:pending" query'],
    ]);
    expect(error.problems[1]!.message).toContain(`is ${DATA_API_MAX_SQL_LENGTH + 10} characters long`);
  });

  it('fails the synth, naming the migrationsDirectory prop, the file and the line', () => {
    const directory = writeMigrations({ 'a/expand01_huge.sql': `\n\n${insertOfLength(70_000)};\n` });
    const synth = () => {
      const stack = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Test', {
        env: { account: '123456789012', region: 'us-east-1' },
      });
      new ExpandMigrateContractUpgrade(stack, 'Upgrade', {
        clusterArn: 'arn:aws:rds:us-east-1:123456789012:cluster:orders',
        secret: secretsmanager.Secret.fromSecretCompleteArn(
          stack,
          'Secret',
          'arn:aws:secretsmanager:us-east-1:123456789012:secret:orders-db-AbCdEf',
        ),
        databaseName: 'orders',
        migrationsDirectory: directory,
        drainSource: DrainSource.databaseSessions('orders-api/v41%'),
      });
    };
    expect(synth).toThrow(ConstructPropsError);
    expect(synth).toThrow(/migrationsDirectory .*a\/expand01_huge\.sql:3: the statement is 70000 characters long/s);
  });
});
