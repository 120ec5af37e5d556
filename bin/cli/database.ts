import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RDSDataClient } from '@aws-sdk/client-rds-data';
import type { Command } from 'commander';
import { DataApiSqlClient, PgSqlClient, type SqlClient } from '../../lambdas/core/index.ts';
import { UsageError } from './cli-errors.ts';
import { checkDatabaseUrl } from './connection-string.ts';

/** The migrations directory of the shipped demo, when cdk.json names none. */
export const DEMO_MIGRATIONS_DIRECTORY = 'demo/migrations';

/**
 * The migrations directory commands read when `--migrations` is not given: the one the CDK app deploys
 * (`emc:migrationsDirectory` in ./cdk.json), else the demo's.
 */
export function defaultMigrationsDirectory(cwd = process.cwd()): string {
  try {
    const cdk = JSON.parse(readFileSync(join(cwd, 'cdk.json'), 'utf8')) as { context?: Record<string, unknown> };
    const configured = cdk.context?.['emc:migrationsDirectory'];
    if (typeof configured === 'string' && configured.length > 0) return configured;
  } catch {
    // No cdk.json here, or not JSON: the demo's directory.
  }
  return DEMO_MIGRATIONS_DIRECTORY;
}

/** How to reach the database: node-postgres with a URL, or the RDS Data API with the cluster and secret. */
export type DatabaseTarget =
  | { readonly kind: 'url'; readonly url: string }
  | {
      readonly kind: 'data-api';
      readonly clusterArn: string;
      readonly secretArn: string;
      readonly database: string;
      readonly region: string | undefined;
    };

export interface DatabaseFlags {
  readonly databaseUrl?: string;
  readonly clusterArn?: string;
  readonly secretArn?: string;
  readonly database?: string;
  readonly region?: string;
}

export function addDatabaseOptions(command: Command): Command {
  return command
    .option('--database-url <url>', 'PostgreSQL URL, read with node-postgres (env EMC_DATABASE_URL)')
    .option('--cluster-arn <arn>', 'Aurora cluster ARN, read with the RDS Data API (env EMC_CLUSTER_ARN)')
    .option('--secret-arn <arn>', 'Secrets Manager secret of the Data API (env EMC_SECRET_ARN)')
    .option('--database <name>', 'database name for the Data API (env EMC_DATABASE_NAME)', undefined)
    .option('--region <region>', 'AWS region for the Data API (default: the cluster ARN\'s region)');
}

/** Flags first, then `EMC_*` variables; a URL and a cluster are mutually exclusive. */
export function databaseTarget(flags: DatabaseFlags, env: Readonly<Record<string, string | undefined>>): DatabaseTarget {
  const url = flags.databaseUrl ?? env['EMC_DATABASE_URL'];
  const clusterArn = flags.clusterArn ?? env['EMC_CLUSTER_ARN'];
  const secretArn = flags.secretArn ?? env['EMC_SECRET_ARN'];
  if (url && (flags.clusterArn || flags.secretArn)) {
    throw new UsageError('Give either --database-url or --cluster-arn/--secret-arn, not both.');
  }
  if (url) {
    checkDatabaseUrl(url, flags.databaseUrl ? '--database-url' : 'EMC_DATABASE_URL');
    return { kind: 'url', url };
  }
  if (clusterArn && secretArn) {
    return {
      kind: 'data-api',
      clusterArn,
      secretArn,
      database: flags.database ?? env['EMC_DATABASE_NAME'] ?? 'postgres',
      region: flags.region ?? /^arn:[a-z-]+:rds:([a-z0-9-]+):/.exec(clusterArn)?.[1],
    };
  }
  throw new UsageError(
    'No database given.',
    'Pass --database-url postgres://... (or set EMC_DATABASE_URL), or --cluster-arn and --secret-arn with --database (or EMC_CLUSTER_ARN, EMC_SECRET_ARN, EMC_DATABASE_NAME) to use the RDS Data API.',
  );
}

/** The real clients: node-postgres, or the Data API client with an SDK client it closes with itself. */
export function openDatabase(target: DatabaseTarget): SqlClient {
  if (target.kind === 'url') return new PgSqlClient(target.url, { applicationName: 'emc-cli' });
  // maxAttempts 1: DataApiSqlClient retries what is safe to retry itself (see its createClient).
  const sdk = new RDSDataClient({ maxAttempts: 1, ...(target.region ? { region: target.region } : {}) });
  const client = new DataApiSqlClient({ resourceArn: target.clusterArn, secretArn: target.secretArn, database: target.database, client: sdk });
  return {
    query: (sql, params, options) => client.query(sql, params, options),
    transaction: (work) => client.transaction(work),
    async close() {
      await client.close();
      sdk.destroy();
    },
  };
}
