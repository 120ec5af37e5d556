import { describe, expect, it } from 'vitest';
import { BatchSizeController, MAX_ADAPTIVE_BATCH_SIZE, MIN_ADAPTIVE_BATCH_SIZE } from '../lambdas/core/migrate/batch-size-controller.ts';

/** The sizes the controller asks for when every batch takes `msPerRow` per row plus `overheadMs`. */
function sizesOver(controller: BatchSizeController, batches: number, msPerRow: number, overheadMs = 0): number[] {
  const sizes: number[] = [];
  for (let i = 0; i < batches; i++) {
    const size = controller.next;
    sizes.push(size);
    controller.observe(size, overheadMs + size * msPerRow, false);
  }
  return sizes;
}

describe('the adaptive batch size', () => {
  it('grows on a fast table, at most fourfold per batch, until batches take the target', () => {
    // 0.01 ms a row: 200 ms is 20,000 rows.
    const sizes = sizesOver(new BatchSizeController(1000, 200, false), 8, 0.01);
    expect(sizes.slice(0, 4)).toEqual([1000, 4000, 16_000, 20_000]);
    expect(sizes.at(-1)).toBe(20_000);
  });

  it('shrinks on a slow table, at most to a quarter per batch, until batches take the target', () => {
    // 2 ms a row: 200 ms is 100 rows.
    const sizes = sizesOver(new BatchSizeController(1000, 200, false), 6, 2);
    expect(sizes.slice(0, 3)).toEqual([1000, 250, 100]);
    expect(sizes.at(-1)).toBe(100);
  });

  it('shrinks when the table becomes contended mid-run, and grows again when it is fast again', () => {
    const controller = new BatchSizeController(1000, 200, false);
    sizesOver(controller, 6, 0.1); // 2,000 rows in 200 ms
    expect(controller.next).toBe(2000);
    sizesOver(controller, 12, 1); // ten times slower: 200 rows
    expect(controller.next).toBe(200);
    sizesOver(controller, 12, 0.1);
    expect(controller.next).toBe(2000);
  });

  it('smooths one slow outlier: the next batch shrinks, by less than the outlier alone would ask', () => {
    const controller = new BatchSizeController(1000, 200, false);
    sizesOver(controller, 6, 0.1);
    controller.observe(2000, 2000, false); // one batch ten times slower than the others
    expect(controller.next).toBeGreaterThan(200);
    expect(controller.next).toBeLessThan(2000);
  });

  it('stays within its bounds, from any start', () => {
    expect(sizesOver(new BatchSizeController(1000, 200, false), 30, 0.000_01).at(-1)).toBe(MAX_ADAPTIVE_BATCH_SIZE);
    expect(sizesOver(new BatchSizeController(1000, 200, false), 30, 100).at(-1)).toBe(MIN_ADAPTIVE_BATCH_SIZE);
    expect(new BatchSizeController(1, 200, false).next).toBe(MIN_ADAPTIVE_BATCH_SIZE);
    expect(new BatchSizeController(100_000, 200, false).next).toBe(MAX_ADAPTIVE_BATCH_SIZE);
  });

  it('takes a batch of 0 ms as 1 ms (a clock tick, not an infinite rate)', () => {
    // A 2 ms target, so that the growth bound (400) does not hide the rate: 100 rows a ms ask for 200.
    const controller = new BatchSizeController(100, 2, false);
    controller.observe(100, 0, false);
    expect(controller.next).toBe(200);
  });

  it('ignores the short last batch of a pass: it covered fewer rows than it was sized for', () => {
    const controller = new BatchSizeController(1000, 200, false);
    controller.observe(1000, 5000, true);
    expect(controller.next).toBe(1000);
  });

  it('keeps a fixed size (emc:batch-size, or targetBatchMs 0) whatever the batches take, outside the bounds too', () => {
    const fixed = new BatchSizeController(5, 200, true);
    expect(sizesOver(fixed, 5, 0.0001)).toEqual([5, 5, 5, 5, 5]);
    expect(sizesOver(new BatchSizeController(70_000, 200, true), 3, 1)).toEqual([70_000, 70_000, 70_000]);
  });
});
