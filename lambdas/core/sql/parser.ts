import { loadModule } from 'libpg-query';

let loaded: Promise<void> | undefined;
let ready = false;

/**
 * libpg-query is PostgreSQL's own parser compiled to WebAssembly; its synchronous functions need the module loaded
 * once per process. Every entry point that parses SQL awaits this first.
 */
export async function ensureParserLoaded(): Promise<void> {
  loaded ??= loadModule().then(() => {
    ready = true;
  });
  return loaded;
}

ensureParserLoaded.assertLoaded = (): void => {
  if (!ready) throw new Error('Internal error: the SQL parser was used before ensureParserLoaded() resolved.');
};
