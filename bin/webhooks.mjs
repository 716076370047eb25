#!/usr/bin/env node
// Runs the TypeScript CLI through tsx, so that the package needs no build
// step. The path is resolved against this file, not the working directory.
import { register } from 'tsx/esm/api';

register();
await import(new URL('../producers/cli.ts', import.meta.url).href);
