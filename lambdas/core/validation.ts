import { config } from 'zod/mini';
import en from 'zod/v4/locales/en.js';

/**
 * Code that runs in Lambda validates with the tree-shakable `zod/mini` (about 25 KB in a bundle, where classic zod
 * weighs 450 KB) and imports this module once for its side effect: English error messages. Import `zod/mini` as
 * `import * as z from 'zod/mini'` and never re-export the namespace, or the bundler keeps all of zod.
 */
config(en());
