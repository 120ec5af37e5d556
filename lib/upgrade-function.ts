import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CATALOG_FILE_NAME } from './catalog-at-synth.ts';
import { BUNDLE_FILE, type HandlerEntry } from './lambda-bundles.ts';

export interface UpgradeFunctionProps {
  /** Handler file in lambdas/handlers, without extension. */
  readonly entry: HandlerEntry;
  /** The directory of the built bundles (`<entry>/index.mjs`), see lambda-bundles.ts. */
  readonly bundles: string;
  readonly description: string;
  readonly timeout: Duration;
  readonly environment: Record<string, string>;
  readonly catalogFile: string;
  readonly logRetention: logs.RetentionDays;
  readonly logKey: kms.IKey;
}

/**
 * One task's function: its prebuilt minified ESM bundle with the compiled catalog beside it (the asset holds exactly
 * those two files, so what is deployed is the bundle the tests ran), on the newest Node.js runtime and ARM64, with
 * X-Ray tracing and its own encrypted log group. Its role starts empty (no managed policy): logs are granted on its
 * own log group only.
 */
export class UpgradeFunction extends Construct {
  readonly function: lambda.Function;
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
    const asset = mkdtempSync(join(tmpdir(), `emc-${props.entry}-`));
    copyFileSync(join(props.bundles, props.entry, BUNDLE_FILE), join(asset, BUNDLE_FILE));
    copyFileSync(props.catalogFile, join(asset, CATALOG_FILE_NAME));
    this.function = new lambda.Function(this, 'Function', {
      code: lambda.Code.fromAsset(asset),
      handler: 'index.handler',
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
    });
    logGroup.grantWrite(this.role);
  }
}
