import { App, Duration } from 'aws-cdk-lib';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SettingsOverrides } from '../../lambdas/core/index.ts';
import type { WorkflowTask } from '../../lambdas/core/workflow/index.ts';
import type { DrainSource } from '../../lib/drain-source.ts';
import type { BatchSettings } from '../../lib/expand-migrate-contract-upgrade.ts';
import { UpgradeStack } from '../../lib/upgrade-stack.ts';
import type { DeployedFunction } from './local-lambda.ts';
import type { StateMachineDefinition } from './step-functions-interpreter.ts';

/** Placeholder identity of the local stack: nothing is deployed, the ARNs only need to be well formed. */
export const LOCAL_ENV = { account: '123456789012', region: 'us-east-1' } as const;

export interface SynthesizedStateMachine {
  /** The state machine definition exactly as CDK synthesizes it, with CloudFormation intrinsics resolved. */
  readonly definition: StateMachineDefinition;
  /** Each Lambda Task state's name and the workflow task whose function its Resource invokes. */
  readonly tasks: ReadonlyMap<string, WorkflowTask | 'recordFailure'>;
  /** Each task's function as deployed: its staged code asset, handler, environment, timeout and memory. */
  readonly functions: ReadonlyMap<WorkflowTask | 'recordFailure', DeployedFunction>;
  /** The CloudFormation template, for tests. */
  readonly template: Record<string, unknown>;
}

export interface SynthesisOptions {
  readonly migrationsDirectory: string;
  readonly drainSource: DrainSource;
  /** The database the functions are configured for. @default 'postgres' */
  readonly databaseName?: string;
  /** The construct's batch settings, as a deployment would set them. @default the engine's defaults */
  readonly settings?: SettingsOverrides;
  /** The construct's prop of that name. @default the construct's default */
  readonly maxMigrateCallsPerExecution?: number;
  /**
   * Where the cloud assembly (template and staged assets) is written. To run the functions, it must be inside a
   * directory whose node_modules has the AWS SDK, as the Lambda runtime provides it. @default a temporary directory
   */
  readonly outdir?: string;
}

/**
 * Synthesizes the real app's upgrade stack and extracts its state machine definition from the template, and each
 * function from the template and the assets manifest: the staged asset directory is what `cdk deploy` uploads. There
 * is no hand-written copy of the definition anywhere: what runs locally is what `cdk deploy` would deploy.
 */
export function synthesizeStateMachine(options: SynthesisOptions): SynthesizedStateMachine {
  const app = new App({ outdir: options.outdir });
  const stack = new UpgradeStack(app, 'EmcUpgradeLocal', {
    env: LOCAL_ENV,
    clusterArn: `arn:aws:rds:${LOCAL_ENV.region}:${LOCAL_ENV.account}:cluster:local`,
    secretArn: `arn:aws:secretsmanager:${LOCAL_ENV.region}:${LOCAL_ENV.account}:secret:local-AbCdEf`,
    databaseName: options.databaseName ?? 'postgres',
    migrationsDirectory: options.migrationsDirectory,
    drainSource: options.drainSource,
    batchSettings: options.settings && toBatchSettings(options.settings),
    maxMigrateCallsPerExecution: options.maxMigrateCallsPerExecution,
  });
  const assembly = app.synth();
  const artifact = assembly.getStackByName(stack.stackName);
  const template = artifact.template as {
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
    if (state.Type !== 'Task' || state.Resource === START_EXECUTION) continue;
    const logicalId = /:function:([A-Za-z0-9]+)$/.exec(state.Resource ?? '')?.[1];
    const task = logicalId ? taskOfLogicalId.get(logicalId) : undefined;
    if (!task) throw new Error(`Task state "${name}" invokes ${state.Resource}, which is not an upgrade function`);
    tasks.set(name, task);
  }
  const assets = assetDirectories(join(assembly.directory, `${artifact.id}.assets.json`), assembly.directory);
  const functions = new Map<WorkflowTask | 'recordFailure', DeployedFunction>();
  for (const [logicalId, task] of taskOfLogicalId) {
    const properties = resources[logicalId]!.Properties as {
      Code: { S3Key: string };
      Handler: string;
      Environment: { Variables: Record<string, unknown> };
      Timeout: number;
      MemorySize: number;
    };
    const codeDirectory = assets.get(properties.Code.S3Key);
    if (!codeDirectory) throw new Error(`The code of ${logicalId} (${properties.Code.S3Key}) is not among the staged assets`);
    functions.set(task, {
      logicalId,
      codeDirectory,
      handler: properties.Handler,
      environment: resolveIntrinsics(properties.Environment.Variables, resources) as Record<string, string>,
      timeoutSeconds: properties.Timeout,
      memorySize: properties.MemorySize,
    });
  }
  return { definition, tasks, functions, template };
}

/** The assets manifest's file assets: the object key each is uploaded as, and its staged directory. */
function assetDirectories(manifestFile: string, assemblyDirectory: string): Map<string, string> {
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as {
    files?: Record<string, { source: { path: string }; destinations: Record<string, { objectKey: string }> }>;
  };
  const directories = new Map<string, string>();
  for (const asset of Object.values(manifest.files ?? {})) {
    for (const destination of Object.values(asset.destinations)) {
      directories.set(destination.objectKey, join(assemblyDirectory, asset.source.path));
    }
  }
  return directories;
}

function toBatchSettings(settings: SettingsOverrides): BatchSettings {
  const millis = (ms: number | undefined) => (ms === undefined ? undefined : Duration.millis(ms));
  return {
    batchSize: settings.batchSize,
    targetBatchDuration: millis(settings.targetBatchMs),
    batchPause: millis(settings.batchPauseMs),
    lockTimeout: millis(settings.lockTimeoutMs),
    batchStatementTimeout: millis(settings.batchStatementTimeoutMs),
    migrateBudget: millis(settings.migrateBudgetMs),
    leaseTtl: settings.leaseTtlSeconds === undefined ? undefined : Duration.seconds(settings.leaseTtlSeconds),
  };
}

/** The Step Functions service integration a Task uses to start an execution (the continuation of a long migration). */
export const START_EXECUTION = 'arn:aws:states:::states:startExecution';

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
