import { lambdaDependencies } from './commons/lambda-dependencies.ts';
import { createWorkflowHandlers } from './workflow-handlers.ts';

/** Lambda entry point of the "drain" task of the upgrade state machine. */
export const handler = createWorkflowHandlers(lambdaDependencies()).drain;
