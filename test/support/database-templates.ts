import pg from 'pg';
import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import { PgSqlClient } from '../../lambdas/core/sql/pg-client.ts';
import type { TestDatabase } from './database.ts';

/**
 * Databases prepared once and cloned many times (`CREATE DATABASE ... TEMPLATE`), for tests that need hundreds of
 * identical starting points (one per kill point), and databases owned by an unprivileged role with a password.
 * All on the shared embedded PostgreSQL of the test run.
 */

function serverUrl(): string {
  return inject('postgresUrl');
}

async function asAdmin<T>(work: (admin: pg.Client) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: serverUrl() });
  await admin.connect();
  try {
    return await work(admin);
  } finally {
    await admin.end();
  }
}

function uniqueName(prefix: string): string {
  return `${prefix}_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
}

function withDatabase(url: string, name: string, user?: { name: string; password: string }): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  if (user) {
    parsed.username = user.name;
    parsed.password = user.password;
  }
  return parsed.toString();
}

function open(name: string, url: string): TestDatabase {
  const client = new PgSqlClient(url);
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on('error', () => {});
  return {
    url,
    name,
    client,
    pool,
    async drop() {
      await client.close();
      await pool.end();
      await asAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

export interface DatabaseTemplate {
  readonly name: string;
  /** A new database with the template's exact content (schema, rows, sequences). */
  clone(): Promise<TestDatabase>;
  drop(): Promise<void>;
}

/** Creates a database, lets `prepare` fill it, disconnects everything from it and returns it as a template. */
export async function createTemplate(prepare: (db: TestDatabase) => Promise<void>): Promise<DatabaseTemplate> {
  const name = uniqueName('tpl');
  await asAdmin((admin) => admin.query(`CREATE DATABASE ${name}`));
  const seeding = open(name, withDatabase(serverUrl(), name));
  try {
    await prepare(seeding);
  } finally {
    await seeding.client.close();
    await seeding.pool.end();
  }
  return {
    name,
    async clone() {
      const cloneName = uniqueName('cl');
      await asAdmin((admin) => admin.query(`CREATE DATABASE ${cloneName} TEMPLATE ${name}`));
      return open(cloneName, withDatabase(serverUrl(), cloneName));
    },
    drop: () => asAdmin(async (admin) => void (await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))),
  };
}

/**
 * A database owned by a new role that is not a superuser, reached with a URL carrying that role's password: the
 * least a real upgrade needs (the database owner). `drop` removes both.
 */
export async function createOwnedDatabase(password: string): Promise<TestDatabase & { readonly role: string }> {
  const role = uniqueName('app');
  const name = uniqueName('own');
  await asAdmin(async (admin) => {
    await admin.query(`CREATE ROLE ${role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '${password.replaceAll("'", "''")}'`);
    await admin.query(`CREATE DATABASE ${name} OWNER ${role}`);
  });
  const db = open(name, withDatabase(serverUrl(), name, { name: role, password }));
  return {
    ...db,
    role,
    async drop() {
      await db.drop();
      await asAdmin((admin) => admin.query(`DROP ROLE IF EXISTS ${role}`));
    },
  };
}
