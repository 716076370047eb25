import { describe, expect, test } from 'vitest';
import { Batcher } from '../../shared/batcher.js';

describe('Batcher', () => {
  test('batches concurrent calls', async () => {
    const batches: number[][] = [];
    const batcher = new Batcher<number, number>(
      async (inputs) => {
        batches.push(inputs);
        return inputs.map((input) => input * 2);
      },
      { maxBatch: 10, maxInFlight: 1 },
    );
    expect(await Promise.all([1, 2, 3].map((input) => batcher.run(input)))).toEqual([2, 4, 6]);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  test('bad input fails only its caller', async () => {
    const batches: number[][] = [];
    const batcher = new Batcher<number, number>(
      async (inputs) => {
        batches.push(inputs);
        if (inputs.includes(2)) throw Object.assign(new Error('invalid input 2'), { code: '22P02' });
        return inputs;
      },
      { maxBatch: 10, maxInFlight: 1 },
    );
    const results = await Promise.allSettled([1, 2, 3].map((input) => batcher.run(input)));
    expect(results.map((result) => result.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(batches, 'the batch, then each input alone').toEqual([[1, 2, 3], [1], [2], [3]]);
  });

  test('connection error fails batch once', async () => {
    const batches: number[][] = [];
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const batcher = new Batcher<number, number>(
      async (inputs) => {
        batches.push(inputs);
        throw refused;
      },
      { maxBatch: 10, maxInFlight: 1 },
    );
    const results = await Promise.allSettled([1, 2, 3].map((input) => batcher.run(input)));
    expect(results).toEqual([1, 2, 3].map(() => ({ status: 'rejected', reason: refused })));
    expect(batches, 'no input is written alone').toEqual([[1, 2, 3]]);
  });
});
