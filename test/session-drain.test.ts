import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drainSummary } from '../lambdas/core/drain/drain-summary.ts';
import { checkSessionDrain } from '../lambdas/core/drain/session-drain.ts';
import { PgSqlClient } from '../lambdas/core/sql/pg-client.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

/**
 * The session drain source's blind spots, on the real PostgreSQL with real roles: an old-release session that sets
 * no application_name, and an upgrade role without pg_read_all_stats, to which PostgreSQL shows other roles'
 * sessions with their database, role and application_name but a NULL backend_start.
 */
describe('checkSessionDrain', () => {
  const suffix = randomUUID().replaceAll('-', '').slice(0, 8);
  const engineRole = `emc_engine_${suffix}`;
  const appRole = `orders_app_${suffix}`;
  let db: TestDatabase;
  let engine: PgSqlClient;
  const sessions: pg.Client[] = [];

  const urlAs = (role: string) => {
    const url = new URL(db.url);
    url.username = role;
    url.password = 'pw';
    return url.toString();
  };
  async function connectApp(applicationName: string | undefined): Promise<pg.Client> {
    const session = new pg.Client({ connectionString: urlAs(appRole), ...(applicationName === undefined ? {} : { application_name: applicationName }) });
    await session.connect();
    sessions.push(session);
    return session;
  }
  async function disconnect(session: pg.Client): Promise<void> {
    await session.end();
    sessions.splice(sessions.indexOf(session), 1);
  }

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.pool.query(`CREATE ROLE ${engineRole} LOGIN PASSWORD 'pw'; CREATE ROLE ${appRole} LOGIN PASSWORD 'pw'`);
    engine = new PgSqlClient(urlAs(engineRole), { applicationName: 'emc-upgrade' });
  });
  afterAll(async () => {
    for (const session of sessions) await session.end();
    await engine.close();
    await db.drop();
    const admin = new pg.Client({ connectionString: db.url.replace(/\/[^/]+$/, '/postgres') });
    await admin.connect();
    await admin.query(`DROP ROLE IF EXISTS ${engineRole}; DROP ROLE IF EXISTS ${appRole}`);
    await admin.end();
  });

  it("counts the application role's unnamed sessions as the old release's when the role is given", async () => {
    // node-postgres sends no application_name unless asked: PostgreSQL shows ''.
    const unnamed = await connectApp(undefined);
    const named = await connectApp('orders-v42');

    // Without the role the unnamed session is invisible: this is the blind spot.
    expect((await checkSessionDrain(engine, { applicationNamePattern: 'orders-v41%' })).drained).toBe(true);

    const report = await checkSessionDrain(engine, { applicationNamePattern: 'orders-v41%', applicationRole: appRole });
    expect(report.drained).toBe(false);
    expect(report.blockers).toEqual([{ applicationName: '', role: appRole, sessions: 1, since: undefined, startTimesHidden: true }]);
    expect(drainSummary(report)).toBe(
      `1 session of role "${appRole}" without application_name connected (start times hidden: the upgrade's database role cannot read other roles' backend_start; grant it pg_read_all_stats to see them)`,
    );

    await disconnect(unnamed);
    await disconnect(named);
    const drained = await checkSessionDrain(engine, { applicationNamePattern: 'orders-v41%', applicationRole: appRole });
    expect(drained).toMatchObject({ drained: true, blockers: [], startTimesHidden: false });
    expect(drainSummary(drained)).toBe(
      `no session with application_name LIKE 'orders-v41%' and no unnamed session of role "${appRole}" is connected: the old release is drained`,
    );
  });

  it('says when PostgreSQL hides the start time instead of reporting 1970', async () => {
    const old = await connectApp('orders-v41.7');
    const hidden = await checkSessionDrain(engine, { applicationNamePattern: 'orders-v41%' });
    expect(hidden.blockers).toEqual([{ applicationName: 'orders-v41.7', role: appRole, sessions: 1, since: undefined, startTimesHidden: true }]);
    expect(hidden.startTimesHidden).toBe(true);
    expect(drainSummary(hidden)).toContain('1 session of "orders-v41.7" connected (start times hidden');
    expect(drainSummary(hidden)).not.toContain('1970');

    await db.pool.query(`GRANT pg_read_all_stats TO ${engineRole}`);
    try {
      const visible = await checkSessionDrain(engine, { applicationNamePattern: 'orders-v41%' });
      expect(visible.startTimesHidden).toBe(false);
      expect(Date.parse(visible.blockers[0]!.since!)).toBeGreaterThan(Date.now() - 60_000);
      expect(drainSummary(visible)).toMatch(/^1 session of "orders-v41\.7" connected \(since 20\d\d-/);
    } finally {
      await db.pool.query(`REVOKE pg_read_all_stats FROM ${engineRole}`);
    }
    await disconnect(old);
  });

  it("refuses an application role that is the upgrade's own", async () => {
    await expect(checkSessionDrain(engine, { applicationNamePattern: 'orders-v41%', applicationRole: engineRole })).rejects.toMatchObject({
      name: 'InputError',
      message: expect.stringContaining(`applicationRole "${engineRole}" is the role the upgrade itself connects as`),
    });
  });
});
