import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../shared/config.js';
import { configError } from '../helpers/config-error.js';

describe('REDIS_CLUSTER_NODES', () => {
  it('defaults to no cluster', () => {
    expect(loadConfig({}).redisClusterNodes).toEqual([]);
    expect(loadConfig({ REDIS_CLUSTER_NODES: ' , ' }).redisClusterNodes).toEqual([]);
  });

  it('parses host:port pairs', () => {
    const config = loadConfig({
      REDIS_CLUSTER_NODES: ' 127.0.0.1:7000,redis-0.cluster.local:7001 ,[::1]:7002,',
    });
    expect(config.redisClusterNodes).toEqual([
      { host: '127.0.0.1', port: 7000 },
      { host: 'redis-0.cluster.local', port: 7001 },
      { host: '::1', port: 7002 },
    ]);
  });

  it.each([
    '127.0.0.1',
    '127.0.0.1:',
    ':7000',
    '127.0.0.1:0',
    '127.0.0.1:65536',
    '127.0.0.1:7000x',
    '::1:7000',
    '[not-ip]:7000',
    'redis://127.0.0.1:7000',
    '127.0.0.1:7000;127.0.0.1:7001',
  ])('rejects %j', (value) => {
    const error = configError({ REDIS_CLUSTER_NODES: value });
    expect(error.variable).toBe('REDIS_CLUSTER_NODES');
    expect(error.message).toContain(`got "${value}"`);
  });

  it('names the bad entry of a list', () => {
    const error = configError({ REDIS_CLUSTER_NODES: '127.0.0.1:7000,127.0.0.1' });
    expect(error.message).toBe(
      'REDIS_CLUSTER_NODES: must be comma-separated host:port pairs such as "127.0.0.1:7000,127.0.0.1:7001" ([::1]:7000 for IPv6), got "127.0.0.1"',
    );
  });

  it('keeps a braced prefix without a cluster', () => {
    expect(loadConfig({ QUEUE_PREFIX: '{whk}:prod' }).queuePrefix).toBe('{whk}:prod');
  });

  it('rejects a braced prefix on a cluster', () => {
    const error = configError({
      REDIS_CLUSTER_NODES: '127.0.0.1:7000',
      QUEUE_PREFIX: '{whk}:prod',
    });
    expect(error.variable).toBe('QUEUE_PREFIX');
    expect(error.message).toBe(
      'QUEUE_PREFIX: must not contain "{" or "}" when REDIS_CLUSTER_NODES is set, because every queue gets its own hash tag such as "{whk:prod:dispatch}"; got "{whk}:prod", use "whk:prod"',
    );
  });

  it('accepts a plain prefix on a cluster', () => {
    const config = loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:7000', QUEUE_PREFIX: 'whk' });
    expect(config.queuePrefix).toBe('whk');
  });
});

describe('DELIVERY_QUEUE_SHARDS', () => {
  it('defaults to 1', () => {
    expect(loadConfig({}).deliveryQueueShards).toBe(1);
    expect(loadConfig({ DELIVERY_QUEUE_SHARDS: '' }).deliveryQueueShards).toBe(1);
  });

  it.each([
    ['1', 1],
    [' 16 ', 16],
    ['256', 256],
  ])('accepts %j', (value, expected) => {
    expect(loadConfig({ DELIVERY_QUEUE_SHARDS: value }).deliveryQueueShards).toBe(expected);
  });

  it.each(['0', '257', '-1', '2.5', 'four'])('rejects %j', (value) => {
    const error = configError({ DELIVERY_QUEUE_SHARDS: value });
    expect(error.variable).toBe('DELIVERY_QUEUE_SHARDS');
    expect(error.message.startsWith('DELIVERY_QUEUE_SHARDS: ')).toBe(true);
  });

  it('states the range', () => {
    expect(configError({ DELIVERY_QUEUE_SHARDS: '0' }).message).toBe(
      'DELIVERY_QUEUE_SHARDS: must be between 1 and 256, got 0',
    );
  });
});
