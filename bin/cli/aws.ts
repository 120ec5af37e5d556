import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  ListStateMachinesCommand,
  type DescribeExecutionOutput,
  type HistoryEvent,
  type SFNClient,
} from '@aws-sdk/client-sfn';
import { asAwsCredentialsError, errorName, NotFoundError, UsageError } from './cli-errors.ts';

/** The environment variables `emc` reads to find the state machine. */
export const STATE_MACHINE_ENV = 'EMC_STATE_MACHINE_ARN';
export const STACK_ENV = 'EMC_STACK';
/** The stack `bin/app.ts` deploys. */
export const DEFAULT_STACK = 'EmcUpgrade';
/**
 * CloudFormation names a state machine without `stateMachineName` `<logical id>-<random>`; the construct's logical
 * id in the upgrade stack starts with this.
 */
export const GENERATED_NAME_PREFIX = 'UpgradeStateMachine';

const STATE_MACHINE_ARN = /^arn:[a-z-]+:states:([a-z0-9-]+):(\d{12}):stateMachine:([A-Za-z0-9_.-]+)$/;
const EXECUTION_ARN = /^arn:[a-z-]+:states:([a-z0-9-]+):(\d{12}):execution:([A-Za-z0-9_.-]+):([^:]+)$/;

/** How `emc` found the state machine or execution a command works on, for messages. */
export interface Subject {
  readonly kind: 'state machine' | 'execution';
  readonly arn: string;
}

/** The region of a Step Functions ARN, so a command follows the ARN it was given instead of the default region. */
export function regionOfArn(arn: string): string | undefined {
  return STATE_MACHINE_ARN.exec(arn)?.[1] ?? EXECUTION_ARN.exec(arn)?.[1];
}

/** `arn:...:stateMachine:M` + `name` -> `arn:...:execution:M:name`. */
export function executionArnOf(stateMachineArn: string, name: string): string {
  if (!STATE_MACHINE_ARN.test(stateMachineArn)) {
    throw new NotFoundError(
      `Not a state machine ARN: "${stateMachineArn}" (expected arn:aws:states:<region>:<account>:stateMachine:<name>).`,
      stateMachineHint(),
    );
  }
  return `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
}

/** An execution given as an ARN is used as is; a bare name is resolved against the state machine. */
export function isExecutionArn(reference: string): boolean {
  return reference.startsWith('arn:');
}

/**
 * Sends one Step Functions call and turns its failures into the CLI's errors, naming the ARN that was asked for:
 * a missing state machine or execution and an invalid ARN become `NotFoundError`, credentials problems
 * `AwsCredentialsError`. Anything else is rethrown as is.
 */
export async function sfnCall<T>(send: () => Promise<T>, subject: Subject | undefined): Promise<T> {
  try {
    return await send();
  } catch (error) {
    const name = errorName(error);
    const detail = error instanceof Error ? error.message : String(error);
    if (name === 'StateMachineDoesNotExist') {
      throw new NotFoundError(
        `State machine not found: ${subject?.arn ?? '(unknown)'} (Step Functions: ${detail}).`,
        stateMachineHint(),
        { cause: error },
      );
    }
    if (name === 'ExecutionDoesNotExist') {
      throw new NotFoundError(
        `Execution not found: ${subject?.arn ?? '(unknown)'} (Step Functions: ${detail}).`,
        'Check the execution ARN or name (emc status lists the latest execution) and the region.',
        { cause: error },
      );
    }
    if (name === 'InvalidArn') {
      throw new NotFoundError(
        `Invalid ${subject?.kind ?? 'resource'} ARN: ${subject?.arn ?? '(unknown)'} (Step Functions: ${detail}).`,
        subject?.kind === 'execution'
          ? 'Pass the execution ARN (arn:aws:states:<region>:<account>:execution:<state machine>:<name>) or its name.'
          : stateMachineHint(),
        { cause: error },
      );
    }
    throw asAwsCredentialsError(error);
  }
}

function stateMachineHint(): string {
  return `Pass --state-machine-arn (or set ${STATE_MACHINE_ENV}) to the stack output "StateMachineArn", in the stack's region (--region or AWS_REGION).`;
}

/**
 * The state machine to use: `--state-machine-arn`, else `EMC_STATE_MACHINE_ARN`, else the one state machine of the
 * region whose name contains the stack name (`--stack`, `EMC_STACK`, default `EmcUpgrade`) or, failing that, whose
 * name is the one CloudFormation generates for this stack's construct (`UpgradeStateMachine…`).
 */
export async function resolveStateMachineArn(
  sfn: SFNClient,
  options: { readonly stateMachineArn?: string; readonly stack?: string },
  env: Readonly<Record<string, string | undefined>>,
): Promise<string> {
  const explicit = options.stateMachineArn ?? env[STATE_MACHINE_ENV];
  if (explicit) return explicit;
  const stack = options.stack ?? env[STACK_ENV] ?? DEFAULT_STACK;
  const machines: { name: string; arn: string }[] = [];
  let nextToken: string | undefined;
  do {
    const page = await sfnCall(() => sfn.send(new ListStateMachinesCommand({ nextToken, maxResults: 1000 })), undefined);
    for (const m of page.stateMachines ?? []) {
      if (m.name && m.stateMachineArn) machines.push({ name: m.name, arn: m.stateMachineArn });
    }
    nextToken = page.nextToken;
  } while (nextToken);
  const byStack = machines.filter((m) => m.name.toLowerCase().includes(stack.toLowerCase()));
  const candidates = byStack.length > 0 ? byStack : machines.filter((m) => m.name.startsWith(GENERATED_NAME_PREFIX));
  if (candidates.length === 1) return candidates[0]!.arn;
  if (candidates.length === 0) {
    throw new NotFoundError(
      `No state machine found for stack "${stack}": none of the region's ${machines.length} state machines has a name containing "${stack}" or starting with "${GENERATED_NAME_PREFIX}".`,
      stateMachineHint(),
    );
  }
  throw new UsageError(
    `Several state machines match stack "${stack}": ${candidates.map((c) => c.name).join(', ')}.`,
    `Choose one with --state-machine-arn (or ${STATE_MACHINE_ENV}).`,
  );
}

export async function describeExecution(sfn: SFNClient, executionArn: string): Promise<DescribeExecutionOutput> {
  return sfnCall(() => sfn.send(new DescribeExecutionCommand({ executionArn })), { kind: 'execution', arn: executionArn });
}

/** The whole history, oldest first, following `nextToken` over every page. */
export async function readExecutionHistory(sfn: SFNClient, executionArn: string): Promise<HistoryEvent[]> {
  const events: HistoryEvent[] = [];
  let nextToken: string | undefined;
  do {
    const page = await sfnCall(
      () => sfn.send(new GetExecutionHistoryCommand({ executionArn, nextToken, maxResults: 1000, includeExecutionData: true })),
      { kind: 'execution', arn: executionArn },
    );
    events.push(...(page.events ?? []));
    nextToken = page.nextToken;
  } while (nextToken);
  return events;
}

/**
 * The events after `afterId`, oldest first. Reads newest first and stops at the first known event, so polling a
 * long execution costs one call per poll, not the whole history every time.
 */
export async function readEventsAfter(sfn: SFNClient, executionArn: string, afterId: number): Promise<HistoryEvent[]> {
  const fresh: HistoryEvent[] = [];
  let nextToken: string | undefined;
  do {
    const page = await sfnCall(
      () =>
        sfn.send(
          new GetExecutionHistoryCommand({ executionArn, nextToken, reverseOrder: true, maxResults: 200, includeExecutionData: true }),
        ),
      { kind: 'execution', arn: executionArn },
    );
    for (const event of page.events ?? []) {
      if ((event.id ?? 0) <= afterId) return fresh.reverse();
      fresh.push(event);
    }
    nextToken = page.nextToken;
  } while (nextToken);
  return fresh.reverse();
}
