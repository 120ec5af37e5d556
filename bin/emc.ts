#!/usr/bin/env -S npx tsx
// The `emc` command line (package.json "bin"). Commands are in bin/cli/, one file each; see docs/operators.md.
import { processContext } from './cli/host.ts';
import { runCli } from './cli/program.ts';

const context = processContext();
try {
  process.exitCode = await runCli(process.argv.slice(2), context);
} finally {
  context.close();
}
