/**
 * The database's version during an Expand-Migrate-Contract upgrade, as Glance shows it: the expand head alone
 * until a contract step has run, then "<expand head>, <contract head>" (e.g. `bexar_expand03, bexar_contract01`).
 */
export interface CompositeVersion {
  readonly expand: string | undefined;
  readonly contract: string | undefined;
}

/** What a database that never ran a step reads as. */
export const NO_VERSION = '(none)';

export function formatVersion(version: CompositeVersion): string {
  if (!version.expand && !version.contract) return NO_VERSION;
  return [version.expand, version.contract].filter(Boolean).join(', ');
}
