import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { scanSync } from 'libpg-query';
import { readDirectives } from '../catalog/directives.ts';
import { alterCommands } from '../catalog/phase-lint.ts';
import { splitStatements, type ParsedStatement } from '../catalog/sql-statements.ts';
import type { Catalog, Phase } from '../catalog/step.ts';
import { CatalogError, type CatalogProblem } from '../errors.ts';
import { withPlaceholdersAsParams } from '../sql/named-parameters.ts';
import { kindOf } from '../steps/run-steps.ts';
import type { StandaloneStatement } from '../steps/statement-by-statement-step.ts';
import type { Step } from '../steps/step-kind.ts';
import { knownLockRule, whyInPhase } from './lock-rules.ts';
import { runSquawk } from './squawk.ts';

/** A lock-safety finding in a step's file: refuses the catalog unless the file allows it with a reason. */
export interface LockFinding {
  readonly file: string;
  readonly line: number;
  readonly phase: Phase;
  readonly rule: string;
  /** squawk's own description of the problem. */
  readonly message: string;
  /** Why the rule matters in this phase. */
  readonly why: string;
}

export interface LockLintReport {
  /** Findings no directive allows. */
  readonly findings: readonly LockFinding[];
  /** Findings the file allows with `-- emc:allow-lock <rule> <reason>`, and the reason. */
  readonly allowed: readonly (LockFinding & { readonly reason: string })[];
  /** Malformed or useless `emc:allow-lock` directives: the catalog is invalid. */
  readonly problems: readonly CatalogProblem[];
}

/** What a catalog that loaded is found to hold: the findings that refuse it and those its files allow. */
export type LockSafety = Omit<LockLintReport, 'problems'>;

/**
 * The lock-safety lint as `emc lint` and `cdk synth` both run it, on a catalog that loaded: a malformed or useless
 * `emc:allow-lock` directive makes the catalog invalid (a `CatalogError`, every problem at once); findings are
 * returned for the caller to refuse. Throws `LintToolUnavailableError` when squawk cannot run: the lint never passes
 * without it.
 */
export function checkLockSafety(catalog: Catalog, options: { readonly binary?: string } = {}): LockSafety {
  const { findings, allowed, problems } = lintLocks(catalog, options);
  if (problems.length > 0) throw new CatalogError(problems);
  return { findings, allowed };
}

/** The directive that allows a finding, as the file must write it. */
export function allowLockDirective(rule: string): string {
  return `-- emc:allow-lock ${rule} <reason>`;
}

/**
 * The lock-safety lint of a valid catalog: squawk's rules, kept per phase as `LOCK_RULES` says, over every step's
 * file, in one squawk process. `binary` is squawk's executable (found in squawk-cli when not given).
 */
function lintLocks(catalog: Catalog, options: { readonly binary?: string } = {}): LockLintReport {
  const steps = catalog.steps.map((step) => readStepForLint(catalog.directory, step));
  // squawk judges a file by whether its statements share one transaction (a migration: each batch is one).
  const raw = [
    ...runSquawk(
      steps.map((s) => ({ text: s.squawkText, transactional: kindOf(s.step).transactional })),
      ...(options.binary ? [options.binary] : []),
    ),
    ...steps.flatMap((s, input) => s.emcFindings.map((f) => ({ ...f, input }))),
  ];
  const findings: LockFinding[] = [];
  const allowed: (LockFinding & { reason: string })[] = [];
  const problems: CatalogProblem[] = steps.flatMap((s) => s.problems);
  const used = new Set<string>();
  for (const f of raw) {
    const { step, allows } = steps[f.input]!;
    const why = whyInPhase(f.rule, step.phase);
    if (!why || engineMakesSafe(step, f.rule, f.line)) continue;
    const finding = { file: step.file, line: f.line, phase: step.phase, rule: f.rule, message: f.message, why };
    const allow = allows.get(f.rule);
    if (allow) {
      used.add(`${step.file}\0${f.rule}`);
      allowed.push({ ...finding, reason: allow.reason });
    } else {
      findings.push(finding);
    }
  }
  for (const { step, allows } of steps) {
    for (const [rule, allow] of allows) {
      if (!used.has(`${step.file}\0${rule}`)) {
        problems.push({ file: step.file, line: allow.line, message: `"emc:allow-lock ${rule}" allows nothing: squawk reports no ${rule} finding in this file` });
      }
    }
  }
  const order = (a: LockFinding, b: LockFinding) => catalog.steps.findIndex((s) => s.file === a.file) - catalog.steps.findIndex((s) => s.file === b.file) || a.line - b.line;
  return { findings: findings.sort(order), allowed: allowed.sort(order), problems };
}

/**
 * A named CREATE INDEX CONCURRENTLY is made safe to repeat by the engine itself (an invalid leftover is rebuilt); it
 * only runs in a step whose statements run one by one.
 */
function engineMakesSafe(step: Step, rule: string, line: number): boolean {
  if (rule !== 'prefer-robust-stmts' || kindOf(step).transactional) return false;
  const statement: StandaloneStatement | undefined = step.statements.findLast((s) => s.line <= line);
  return statement?.concurrentIndex !== undefined;
}

interface StepForLint {
  readonly step: Step;
  readonly squawkText: string;
  /** Findings of emc's own rules (`EMC_LOCK_RULES`). */
  readonly emcFindings: readonly { readonly rule: string; readonly line: number; readonly message: string }[];
  readonly allows: ReadonlyMap<string, { readonly reason: string; readonly line: number }>;
  readonly problems: readonly CatalogProblem[];
}

function readStepForLint(directory: string, step: Step): StepForLint {
  // The catalog loaded, so the file is UTF-8 SQL that parses and its directives are well formed.
  const text = readFileSync(join(directory, step.file), 'utf8');
  const split = splitStatements(text);
  const { directives } = readDirectives(text, step.phase, split.ok ? split.statements : []);
  const allows = new Map<string, { reason: string; line: number }>();
  const problems: CatalogProblem[] = [];
  for (const d of directives.filter((d) => d.name === 'allow-lock')) {
    const [rule = '', ...words] = d.argument.split(/\s+/);
    const reason = words.join(' ');
    const problem = (message: string) => problems.push({ file: step.file, line: d.line, message });
    if (!knownLockRule(rule)) problem(`"emc:allow-lock" names no lock-safety rule emc knows: "${rule}" (the rules are in docs/operators.md, "Lock-safety lint")`);
    else if (!whyInPhase(rule, step.phase)) problem(`"emc:allow-lock ${rule}" allows nothing: emc does not report ${rule} in ${step.phase} steps`);
    else if (!reason) problem(`"emc:allow-lock ${rule}" needs a reason after the rule: ${allowLockDirective(rule)}`);
    else if (allows.has(rule)) problem(`"emc:allow-lock ${rule}" appears more than once (line ${allows.get(rule)!.line})`);
    else allows.set(rule, { reason, line: d.line });
  }
  const statements = split.ok ? split.statements : [];
  return { step, squawkText: forSquawk(text), emcFindings: validationsAfterOtherStatements(step, statements), allows, problems };
}

/**
 * `validate-constraint-after-other-statements`: a VALIDATE CONSTRAINT after another statement in a step that runs
 * its statements in one transaction (a no-transaction step commits each one; a migration has one). Validations
 * before it are harmless: they take only SHARE UPDATE EXCLUSIVE, which blocks no read or write.
 */
function validationsAfterOtherStatements(step: Step, statements: readonly ParsedStatement[]): StepForLint['emcFindings'] {
  if (!kindOf(step).transactional) return [];
  const firstOther = statements.findIndex((s) => !isValidation(s));
  if (firstOther < 0) return [];
  return statements
    .slice(firstOther + 1)
    .filter(isValidation)
    .map((s) => ({
      rule: 'validate-constraint-after-other-statements',
      line: s.line,
      message: `VALIDATE CONSTRAINT runs after the statement on line ${statements[firstOther]!.line} in the step's transaction, under the locks it took.`,
    }));
}

function isValidation(statement: ParsedStatement): boolean {
  const commands = statement.type === 'AlterTableStmt' ? alterCommands(statement.node) : [];
  return commands.length > 0 && commands.every((cmd) => cmd.subtype === 'AT_ValidateConstraint');
}

/**
 * The file as squawk must read it: comments blanked (so only `emc:allow-lock` overrides a finding, never a
 * `squawk-ignore` comment) and `:name` placeholders as `$1`, each the same number of bytes, so lines do not move.
 */
function forSquawk(text: string): string {
  if (text.length === 0) return text;
  const bytes = Buffer.from(text, 'utf8');
  for (const token of scanSync(text).tokens) {
    if (token.tokenName !== 'SQL_COMMENT' && token.tokenName !== 'C_COMMENT') continue;
    for (let i = token.start; i < token.end; i++) if (bytes[i] !== 0x0a) bytes[i] = 0x20;
  }
  return withPlaceholdersAsParams(bytes.toString('utf8'));
}

/** The findings as `emc lint` and `cdk synth` print them: a heading, then each finding. */
export function formatLockFindings(findings: readonly LockFinding[]): string {
  const files = new Set(findings.map((f) => f.file)).size;
  return [
    `${findings.length} lock-safety finding${findings.length === 1 ? '' : 's'} in ${files} file${files === 1 ? '' : 's'}:`,
    ...findings.map(formatLockFinding),
  ].join('\n');
}

/** One finding as `emc lint` and `cdk synth` print it. */
function formatLockFinding(f: LockFinding): string {
  return [
    `${f.file}:${f.line}: ${f.rule}: ${f.message}`,
    `    in ${f.phase}: ${f.why}`,
    `    if it is safe here, say why in the file: ${allowLockDirective(f.rule)}`,
  ].join('\n');
}
