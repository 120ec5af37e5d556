#!/usr/bin/env node
// The `emc` command line (package.json "bin": dist/bin/emc.js once built; `npm run emc` runs this source with tsx). Commands are in bin/cli/, one file each; see docs/operators.md.
import { processContext } from './cli/host.ts';
import { runCli } from './cli/program.ts';

const context = processContext();
try {
  process.exitCode = await runCli(process.argv.slice(2), context);
} finally {
  context.close();
}
