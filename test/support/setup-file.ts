// aws-local-stepfunctions 3 needs Promise.withResolvers (Node 22); Node 20 lacks it.
import '../../bin/local/promise-with-resolvers.ts';
