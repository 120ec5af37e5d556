/**
 * The local Step Functions interpreter, aws-local-stepfunctions, behind one module. Its `engines` field asks for
 * Node >= 22 (npm warns EBADENGINE on Node 20, which this project supports), yet all it needs of Node 22 is
 * `Promise.withResolvers`, polyfilled here before it loads. So the package does not depend on it: `npm run build`
 * replaces this module's compiled JavaScript with a bundle of the library (scripts/build.ts).
 */
import './promise-with-resolvers.ts';

export { ExecutionError, StateMachine } from 'aws-local-stepfunctions';
export type { StateMachineDefinition } from 'aws-local-stepfunctions';
