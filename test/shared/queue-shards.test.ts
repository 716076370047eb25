import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  clusterOptions,
  deliveryQueueNames,
  deliveryShardOf,
  fnv1a32,
  queueKeyPattern,
  queueKeyPrefix,
  shardConcurrency,
} from '../../shared/queues.js';

const SINGLE = { queuePrefix: 'whk', redisClusterNodes: [], deliveryQueueShards: 4 };
const CLUSTER = {
  queuePrefix: 'whk',
  redisClusterNodes: [{ host: '127.0.0.1', port: 7000 }],
  deliveryQueueShards: 4,
};

describe('fnv1a32', () => {
  // Standard FNV-1a 32-bit values of these inputs.
  it.each([
    ['', 0x811c9dc5],
    ['a', 0xe40c292c],
    ['foobar', 0xbf9cf968],
  ])('hashes %j', (text, expected) => {
    expect(fnv1a32(text)).toBe(expected);
  });
});

describe('deliveryShardOf', () => {
  it('keeps known ids in their shards', () => {
    // Fixed values: a change of the hash would move receivers between shards.
    expect(deliveryShardOf('00000000-0000-0000-0000-000000000000', 16)).toBe(1);
    expect(deliveryShardOf('6f1c1c1e-8d1a-4c5e-9a63-2f4b1f0e7d11', 16)).toBe(14);
    expect(deliveryShardOf('6f1c1c1e-8d1a-4c5e-9a63-2f4b1f0e7d11', 7)).toBe(1);
  });

  it('ignores the case of the id', () => {
    expect(deliveryShardOf('6F1C1C1E-8D1A-4C5E-9A63-2F4B1F0E7D11', 16)).toBe(14);
  });

  it('puts everything in shard 0 of 1', () => {
    for (let index = 0; index < 100; index++) {
      expect(deliveryShardOf(randomUUID(), 1)).toBe(0);
    }
  });

  it('returns the same shard every time', () => {
    const id = randomUUID();
    const first = deliveryShardOf(id, 8);
    for (let index = 0; index < 10; index++) expect(deliveryShardOf(id, 8)).toBe(first);
  });

  it.each([2, 4, 7, 16, 256])('spreads random ids over %i shards', (shards) => {
    const perShard = 400;
    const counts = new Array<number>(shards).fill(0);
    for (let index = 0; index < shards * perShard; index++) {
      counts[deliveryShardOf(randomUUID(), shards)]! += 1;
    }
    expect(counts).toHaveLength(shards);
    // With 400 ids expected per shard the standard deviation is about 20,
    // so ±30% is more than six deviations.
    expect(Math.min(...counts)).toBeGreaterThan(perShard * 0.7);
    expect(Math.max(...counts)).toBeLessThan(perShard * 1.3);
  });

  it('spreads time-ordered ids', () => {
    // uuid v7 style: the first 12 hex digits are a millisecond timestamp
    // that changes little between receivers created together.
    const counts = new Array<number>(4).fill(0);
    for (let index = 0; index < 4_000; index++) {
      const time = (1_800_000_000_000 + index).toString(16).padStart(12, '0');
      const id = `${time.slice(0, 8)}-${time.slice(8)}-7000-8000-000000000000`;
      counts[deliveryShardOf(id, 4)]! += 1;
    }
    expect(Math.min(...counts)).toBeGreaterThan(700);
    expect(Math.max(...counts)).toBeLessThan(1_300);
  });
});

describe('deliveryQueueNames', () => {
  it('keeps the old name for one shard', () => {
    expect(deliveryQueueNames(1)).toEqual(['delivery']);
  });

  it('numbers several shards from 0', () => {
    expect(deliveryQueueNames(3)).toEqual(['delivery-0', 'delivery-1', 'delivery-2']);
  });
});

describe('queueKeyPrefix', () => {
  it('keeps QUEUE_PREFIX on one server', () => {
    expect(queueKeyPrefix(SINGLE, 'dispatch')).toBe('whk');
    expect(queueKeyPattern(SINGLE)).toBe('whk:*');
  });

  it('gives each queue a hash tag on a cluster', () => {
    expect(queueKeyPrefix(CLUSTER, 'dispatch')).toBe('{whk:dispatch}');
    expect(queueKeyPrefix(CLUSTER, 'delivery-3')).toBe('{whk:delivery-3}');
    expect(queueKeyPattern(CLUSTER)).toBe('{whk:*');
  });
});

describe('shardConcurrency', () => {
  it.each([
    [50, 1, [50]],
    [50, 4, [13, 13, 12, 12]],
    [8, 4, [2, 2, 2, 2]],
    [5, 3, [2, 2, 1]],
  ])('splits %i over %i shards', (total, shards, expected) => {
    const split = shardConcurrency(total, shards);
    expect(split).toEqual(expected);
    expect(split.reduce((sum, value) => sum + value, 0)).toBe(total);
  });

  it('gives each shard at least 1', () => {
    expect(shardConcurrency(2, 4)).toEqual([1, 1, 1, 1]);
  });
});

describe('clusterOptions', () => {
  it('adds nothing for a URL without credentials', () => {
    expect(clusterOptions('redis://127.0.0.1:6379', { maxRetriesPerRequest: null })).toEqual({
      redisOptions: { maxRetriesPerRequest: null },
    });
  });

  it('carries user, password and TLS to every node', () => {
    const options = clusterOptions('rediss://app:s%3Acret@127.0.0.1:6380', {}, {
      enableOfflineQueue: false,
    });
    expect(options).toEqual({
      enableOfflineQueue: false,
      redisOptions: { username: 'app', password: 's:cret', tls: {} },
    });
  });
});
