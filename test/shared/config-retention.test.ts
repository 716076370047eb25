import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../shared/config.js';
import { configError } from '../helpers/config-error.js';

describe('disabling and retention settings', () => {
  it('reads 0 as turned off', () => {
    const config = loadConfig({ RECEIVER_DISABLE_AFTER_MS: '0', RETENTION_DAYS: '0' });
    expect(config.receiverDisableAfterMs).toBe(0);
    expect(config.retentionDays).toBe(0);
  });

  it('reads given values', () => {
    const config = loadConfig({
      RECEIVER_DISABLE_AFTER_MS: '86400000',
      RETENTION_DAYS: '7',
      RETENTION_INTERVAL_MS: '60000',
      RETENTION_BATCH_SIZE: '250',
    });
    expect(config.receiverDisableAfterMs).toBe(86_400_000);
    expect(config.retentionDays).toBe(7);
    expect(config.retentionIntervalMs).toBe(60_000);
    expect(config.retentionBatchSize).toBe(250);
  });

  it('names the variable of a bad value', () => {
    expect(configError({ RECEIVER_DISABLE_AFTER_MS: '-1' }).variable).toBe('RECEIVER_DISABLE_AFTER_MS');
    expect(configError({ RETENTION_DAYS: '1.5' }).message).toBe(
      'RETENTION_DAYS: must be a whole number, got "1.5"',
    );
    expect(configError({ RETENTION_INTERVAL_MS: '999' }).message).toBe(
      'RETENTION_INTERVAL_MS: must be between 1000 and 2147483647, got 999',
    );
    expect(configError({ RETENTION_BATCH_SIZE: '0' }).variable).toBe('RETENTION_BATCH_SIZE');
  });
});
