import type { HistoryEvent } from '@aws-sdk/client-sfn';
import type { ExecutionView } from './execution-view.ts';
import { formatCount, println, progressBar, type Io } from './output.ts';

/** Live progress of an execution being waited on. */
export interface ProgressReporter {
  /** `fresh`: the history events read by this poll. */
  update(view: ExecutionView, fresh: readonly HistoryEvent[]): void;
  /** Ends the live line (TTY) before the result is printed. */
  done(): void;
}

/** Entering these is worth a line; Choice and Pass states are plumbing. */
const SHOWN_ENTRIES = new Set(['TaskStateEntered', 'WaitStateEntered', 'FailStateEntered', 'SucceedStateEntered']);

/**
 * One line per state the first time it is entered (the migrate and drain loops re-enter theirs), then, on a
 * terminal, a status line rewritten in place with a progress bar of the rows migrated or the drain summary;
 * elsewhere (CI logs) plain lines, printed only when the rows or the drain summary change.
 */
export function progressReporter(io: Io): ProgressReporter {
  const shown = new Set<string>();
  let lastRows: string | null = null;
  let lastDrain: string | null = null;
  let liveLine = false;

  const clearLive = () => {
    if (liveLine) io.stdout('\r\x1b[2K');
    liveLine = false;
  };

  return {
    update(view, fresh) {
      for (const event of fresh) {
        const name = event.stateEnteredEventDetails?.name;
        if (name === undefined || !SHOWN_ENTRIES.has(event.type ?? '') || shown.has(name)) continue;
        shown.add(name);
        clearLive();
        println(io, `→ ${name}`);
      }
      const rows = view.migrate && !view.migrate.finished ? rowsText(view) : null;
      const drain = view.phase === 'drain' && view.drain && !view.drain.drained ? `waiting for the old release: ${firstLine(view.drain.summary)}` : null;
      if (io.isTTY) {
        clearLive();
        const status = [rows, drain].filter(Boolean).join('  ');
        if (status) {
          io.stdout(status);
          liveLine = true;
        }
      } else {
        if (rows !== null && rows !== lastRows) println(io, `  ${rows}`);
        if (drain !== null && drain !== lastDrain) println(io, `  ${drain}`);
      }
      lastRows = rows;
      lastDrain = drain;
    },
    done() {
      clearLive();
    },
  };
}

/** `[████░░░░] 42% 4,200 of ~10,000 rows migrated`, or the count alone when the total is unknown. */
export function rowsText(view: ExecutionView): string | null {
  const m = view.migrate;
  if (!m) return null;
  if (m.rowsTotal === null) return `${formatCount(m.rowsDone)} rows migrated (total unknown)`;
  return `${progressBar(m.rowsDone, m.rowsTotal)} ${formatCount(m.rowsDone)} of ~${formatCount(m.rowsTotal)} rows migrated`;
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? '';
}
