import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CATALOG_FILE_NAME } from './catalog-at-synth.ts';

const HANDLERS = join(dirname(fileURLToPath(import.meta.url)), '../lambdas/handlers');

export interface UpgradeFunctionProps {
  /** Handler file in lambdas/handlers, without extension. */
  readonly entry: string;
  readonly description: string;
  readonly timeout: Duration;
  readonly environment: Record<string, string>;
  readonly catalogFile: string;
  readonly logRetention: logs.RetentionDays;
  readonly logKey: kms.IKey;
}

/**
 * One task's function: bundled by the local esbuild (never Docker) as a minified ESM file with the compiled
 * catalog beside it, on the newest Node.js runtime and ARM64, with X-Ray tracing and its own encrypted log group.
 * Its role starts empty (no managed policy): logs are granted on its own log group only.
 */
export class UpgradeFunction extends Construct {
  readonly function: NodejsFunction;
  readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: UpgradeFunctionProps) {
    super(scope, id);
    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention,
      encryptionKey: props.logKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `emc-upgrade ${props.entry} task`,
    });
    this.function = new NodejsFunction(this, 'Function', {
      entry: join(HANDLERS, `${props.entry}.ts`),
      handler: 'handler',
      description: props.description,
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: 256,
      timeout: props.timeout,
      role: this.role,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      tracing: lambda.Tracing.ACTIVE,
      environment: { ...props.environment, POWERTOOLS_SERVICE_NAME: 'emc-upgrade' },
      bundling: {
        format: OutputFormat.ESM,
        minify: true,
        // Class names survive minification (stack traces stay readable); the typed errors' `name`s are literals anyway.
        keepNames: true,
        sourceMap: false,
        target: 'node24',
        mainFields: ['module', 'main'],
        // The AWS SDK (and its @smithy parts) ships with the runtime; node-postgres and the SQL parser serve local runs only.
        // The asset hash is of the bundled output (the default), so it changes with the compiled catalog.
        externalModules: ['@aws-sdk/*', '@smithy/*', 'pg', 'pg-native', 'libpg-query'],
        banner: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
        commandHooks: {
          beforeBundling: () => [],
          beforeInstall: () => [],
          afterBundling: (_input, output) => [`cp "${props.catalogFile}" "${output}/${CATALOG_FILE_NAME}"`],
        },
      },
    });
    logGroup.grantWrite(this.role);
  }
}
