import { expect } from 'vitest';
import { ConfigError, loadConfig } from '../../shared/config.js';

/** Loads `env`, fails the test unless that throws a ConfigError, and returns the error. */
export function configError(env: Record<string, string>): ConfigError {
  let caught: unknown;
  try {
    loadConfig(env);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  return caught as ConfigError;
}
