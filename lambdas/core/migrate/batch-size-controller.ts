/**
 * The bounds of an adaptive batch size. Below `MIN_ADAPTIVE_BATCH_SIZE` a batch is all round trip and bookkeeping;
 * above `MAX_ADAPTIVE_BATCH_SIZE` one batch's row locks, WAL and undo grow past what a duration target can promise to
 * keep short once the table slows down mid-batch (the controller only learns after the batch).
 */
export const MIN_ADAPTIVE_BATCH_SIZE = 10;
export const MAX_ADAPTIVE_BATCH_SIZE = 50_000;

/**
 * At most this factor larger than the batch before it: a fast batch of cold pages may not predict the next, yet the
 * first batches of a call (from `batchSize`) should reach the target within a few round trips.
 */
const MAX_GROWTH = 4;
/** At most this factor smaller: a slow batch shrinks the next quickly, one outlier does not collapse it. */
const MAX_SHRINK = 4;
/** Weight of the newest batch in the smoothed rate; the rest is the batches before it. */
const NEWEST_WEIGHT = 0.5;

/**
 * Sizes the next batch from the measured durations of the batches before it, toward `targetMs` per batch (in the
 * spirit of pt-online-schema-change's `--chunk-time`). Pure: feed it sizes and durations, read the next size.
 *
 * The rate (rows per ms, smoothed over recent batches) times the target gives the next size, within
 * [`MIN_ADAPTIVE_BATCH_SIZE`, `MAX_ADAPTIVE_BATCH_SIZE`] and at most ×4 / ÷4 of the previous one. `fixed` (a step's
 * `emc:batch-size`, or `targetMs` 0) keeps every batch at `initial`.
 */
export class BatchSizeController {
  private size: number;
  private rowsPerMs: number | undefined;

  constructor(
    initial: number,
    private readonly targetMs: number,
    private readonly fixed: boolean,
  ) {
    this.size = fixed ? initial : clamp(initial, MIN_ADAPTIVE_BATCH_SIZE, MAX_ADAPTIVE_BATCH_SIZE);
  }

  /** The size of the next batch. */
  get next(): number {
    return this.size;
  }

  /**
   * A batch of `size` rows asked for took `durationMs`. A batch that ended its pass covered fewer rows than asked:
   * it says nothing about the rate and is left out.
   */
  observe(size: number, durationMs: number, endedPass: boolean): void {
    if (this.fixed || endedPass) return;
    const rate = size / Math.max(durationMs, 1);
    this.rowsPerMs = this.rowsPerMs === undefined ? rate : NEWEST_WEIGHT * rate + (1 - NEWEST_WEIGHT) * this.rowsPerMs;
    const wanted = Math.round(this.rowsPerMs * this.targetMs);
    const bounded = clamp(wanted, Math.ceil(this.size / MAX_SHRINK), this.size * MAX_GROWTH);
    this.size = clamp(bounded, MIN_ADAPTIVE_BATCH_SIZE, MAX_ADAPTIVE_BATCH_SIZE);
  }
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
