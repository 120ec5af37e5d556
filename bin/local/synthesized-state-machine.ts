import { App } from 'aws-cdk-lib';
import type { StateMachineDefinition } from 'aws-local-stepfunctions';
import type { DrainSource } from '../../lib/drain-source.ts';
import { UpgradeStack } from '../../lib/upgrade-stack.ts';
import type { WorkflowTask } from '../../lambdas/core/workflow/state-names.ts';

/** Placeholder identity of the local stack: nothing is deployed, the ARNs only need to be well formed. */
export const LOCAL_ENV = { account: '123456789012', region: 'us-east-1' } as const;

export interface SynthesizedStateMachine {
  /** The state machine definition exactly as CDK synthesizes it, with CloudFormation intrinsics resolved. */
  readonly definition: StateMachineDefinition;
  /** Each Task state's name and the workflow task whose function its Resource invokes. */
  readonly tasks: ReadonlyMap<string, WorkflowTask | 'recordFailure'>;
  /** The functions' environment as the construct configured it (settings, drain source and timeout). */
  readonly environment: Readonly<Record<string, string>>;
  /** The CloudFormation template, for tests. */
  readonly template: Record<string, unknown>;
}

/**
 * Synthesizes the real app's upgrade stack (bundling skipped: nothing is uploaded) and extracts its state machine
 * definition from the template. There is no hand-written copy of the definition anywhere: what runs locally is
 * what `cdk deploy` would deploy.
 */
export function synthesizeStateMachine(options: { migrationsDirectory: string; drainSource: DrainSource }): SynthesizedStateMachine {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new UpgradeStack(app, 'EmcUpgradeLocal', {
    env: LOCAL_ENV,
    clusterArn: `arn:aws:rds:${LOCAL_ENV.region}:${LOCAL_ENV.account}:cluster:local`,
    secretArn: `arn:aws:secretsmanager:${LOCAL_ENV.region}:${LOCAL_ENV.account}:secret:local-AbCdEf`,
    databaseName: 'postgres',
    migrationsDirectory: options.migrationsDirectory,
    drainSource: options.drainSource,
  });
  const template = app.synth().getStackByName(stack.stackName).template as {
    Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }>;
  };
  const machines = Object.values(template.Resources).filter((r) => r.Type === 'AWS::StepFunctions::StateMachine');
  if (machines.length !== 1) throw new Error(`Expected one state machine in the template, found ${machines.length}`);
  const resources = template.Resources;
  const definitionText = resolveIntrinsics(machines[0]!.Properties!.DefinitionString, resources);
  if (typeof definitionText !== 'string') throw new Error('DefinitionString did not resolve to a string');
  const definition = JSON.parse(definitionText) as StateMachineDefinition;

  // Which function each Task invokes, read from the template: the construct's function ids name the task.
  const taskOfLogicalId = new Map<string, WorkflowTask | 'recordFailure'>();
  for (const task of Object.keys(stack.upgrade.functions) as (WorkflowTask | 'recordFailure')[]) {
    taskOfLogicalId.set(stack.resolve(stack.getLogicalId(stack.upgrade.functions[task].function.node.defaultChild as never)), task);
  }
  const tasks = new Map<string, WorkflowTask | 'recordFailure'>();
  for (const [name, state] of Object.entries(definition.States) as [string, { Type: string; Resource?: string }][]) {
    if (state.Type !== 'Task') continue;
    const logicalId = /:function:([A-Za-z0-9]+)$/.exec(state.Resource ?? '')?.[1];
    const task = logicalId ? taskOfLogicalId.get(logicalId) : undefined;
    if (!task) throw new Error(`Task state "${name}" invokes ${state.Resource}, which is not an upgrade function`);
    tasks.set(name, task);
  }
  const functionResource = Object.values(resources).find((r) => r.Type === 'AWS::Lambda::Function')!;
  const environment = (functionResource.Properties?.Environment as { Variables: Record<string, string> }).Variables;
  return { definition, tasks, environment, template };
}

const PSEUDO_PARAMETERS: Record<string, string> = {
  'AWS::Partition': 'aws',
  'AWS::Region': LOCAL_ENV.region,
  'AWS::AccountId': LOCAL_ENV.account,
  'AWS::URLSuffix': 'amazonaws.com',
};

/** Resolves Fn::Join, Ref and Fn::GetAtt ...Arn the way CloudFormation would, with placeholder ARNs. */
function resolveIntrinsics(value: unknown, resources: Record<string, { Type: string }>): unknown {
  if (Array.isArray(value)) return value.map((v) => resolveIntrinsics(v, resources));
  if (value === null || typeof value !== 'object') return value;
  const object = value as Record<string, unknown>;
  if ('Fn::Join' in object) {
    const [separator, parts] = object['Fn::Join'] as [string, unknown[]];
    return parts.map((p) => resolveIntrinsics(p, resources)).join(separator);
  }
  if ('Ref' in object) {
    const name = object.Ref as string;
    if (name in PSEUDO_PARAMETERS) return PSEUDO_PARAMETERS[name];
    return placeholderArn(name, resources);
  }
  if ('Fn::GetAtt' in object) {
    const [logicalId, attribute] = object['Fn::GetAtt'] as [string, string];
    if (attribute !== 'Arn') throw new Error(`Cannot resolve Fn::GetAtt ${logicalId}.${attribute} locally`);
    return placeholderArn(logicalId, resources);
  }
  return Object.fromEntries(Object.entries(object).map(([k, v]) => [k, resolveIntrinsics(v, resources)]));
}

function placeholderArn(logicalId: string, resources: Record<string, { Type: string }>): string {
  const type = resources[logicalId]?.Type;
  const { region, account } = LOCAL_ENV;
  if (type === 'AWS::Lambda::Function') return `arn:aws:lambda:${region}:${account}:function:${logicalId}`;
  throw new Error(`Cannot resolve a reference to ${logicalId} (${type ?? 'unknown'}) locally`);
}
