import { SFNClient } from '@aws-sdk/client-sfn';
import { openDatabase } from '../../bin/cli/database.ts';
import type { CliContext } from '../../bin/cli/host.ts';
import { runCli } from '../../bin/cli/program.ts';

export interface EmcRun {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout parsed as the one JSON document `--json` prints. */
  json<T = Record<string, unknown>>(): T;
}

/**
 * Runs the `emc` program in-process, as `bin/emc.ts` does, with captured output. Step Functions clients are real
 * SFNClient instances (mock them with `mockClient(SFNClient)`); the database is reached for real.
 */
export async function runEmc(
  argv: readonly string[],
  overrides: Partial<CliContext> = {},
  options: { readonly tty?: boolean } = {},
): Promise<EmcRun> {
  let stdout = '';
  let stderr = '';
  let clock = Date.parse('2025-06-01T12:00:00Z');
  const context: CliContext = {
    io: { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), isTTY: options.tty === true },
    env: {},
    sfnClient: (region) => new SFNClient({ region: region ?? 'eu-west-1' }),
    openDatabase,
    sleep: async (ms) => {
      clock += ms;
    },
    now: () => clock,
    runLocalDemo: async () => {
      throw new Error('runLocalDemo is not available in this test');
    },
    ...overrides,
  };
  const exitCode = await runCli(argv, context);
  return {
    exitCode,
    stdout,
    stderr,
    json<T>() {
      return JSON.parse(stdout) as T;
    },
  };
}
