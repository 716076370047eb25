import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { createClient } from '../../producers/api/contract/client.js';
import { apiRoutes } from '../../producers/api/contract/index.js';
import { isBodyRequired, type RouteSpec } from '../../producers/api/contract/route.js';
import { parseWith } from '../../producers/api/contract/server.js';
import {
  GLOBAL_OPTIONS,
  defineCommand,
  parseCommandArgs,
  type AnyCommandSpec,
  type GroupSpec,
} from '../../producers/cli/command-spec.js';
import { DEFAULT_API_URL, resolveApiSettings } from '../../producers/cli/connection.js';
import { rootGroup } from '../../producers/cli/run-cli.js';
import { loadConfig } from '../../shared/config.js';

// These tests hold the CLI to the API contract without a server: every
// command calls one typed client method, every route has a command, and the
// request that a command builds passes the route's own schemas.

const REPOSITORY = fileURLToPath(new URL('../../', import.meta.url));
const UUID = '0b8f7a52-5c1e-4d3a-9a61-2f0e3c9d1b7e';
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

/** Lists every command of the tree with its path, such as `receivers secrets add`. */
function allCommands(): { path: string; command: AnyCommandSpec }[] {
  const found: { path: string; command: AnyCommandSpec }[] = [];
  const walk = (group: GroupSpec, prefix: string[]) => {
    for (const child of group.children) {
      const childPath = [...prefix, child.name];
      if (child.kind === 'group') walk(child, childPath);
      else found.push({ path: childPath.join(' '), command: child });
    }
  };
  walk(rootGroup, []);
  return found;
}

/**
 * Sample arguments of every command, with the options that change its
 * request. A command without a sample fails the table test, so a new
 * command gets one.
 */
const SAMPLES: Record<string, { argv: string[]; stdin?: string }> = {
  publish: { argv: ['github.push', '--id', UUID], stdin: '{"ref": "main"}' },
  'receivers create': {
    argv: [
      '--name', 'billing', '--endpoint', 'https://billing.example.com/hooks',
      '--subscribe', 'billing.**', '--subscribe', 'github.issues.*',
      '--filter', 'github.issues.*={"path": "action", "eq": "opened"}',
      '--description', 'billing service', '--secret', SECRET,
      '--ordered', 'true', '--rate-limit', '20', '--max-in-flight', 'none',
    ],
  },
  'receivers list': { argv: ['--limit', '10', '--after', UUID] },
  'receivers get': { argv: ['billing'] },
  'receivers update': {
    argv: ['billing', '--name', 'billing-2', '--endpoint', 'https://billing.example.com/v2', '--subscribe', 'a.b', '--ordered', 'false'],
  },
  'receivers delete': { argv: ['billing'] },
  'receivers disable': { argv: ['billing', '--reason', 'endpoint moves'] },
  'receivers enable': { argv: ['billing'] },
  'receivers probe': { argv: ['billing', '--resend'] },
  'receivers secrets add': { argv: ['billing', '--secret', SECRET] },
  'receivers secrets list': { argv: ['billing'] },
  'receivers secrets delete': { argv: ['billing', UUID] },
  'events get': { argv: [UUID] },
  'events deliveries': { argv: [UUID] },
  'events resend': { argv: [UUID, '--receiver', 'billing'] },
  'deliveries list': {
    argv: ['--receiver', 'billing', '--state', 'failed', '--since', '2026-12-01T00:00:00Z', '--until', '2026-12-02T00:00:00Z', '--limit', '5'],
  },
  'deliveries show': { argv: [UUID] },
  'deliveries resend': { argv: [UUID] },
  'resends create': { argv: ['--receiver', 'billing', '--since', '2026-12-01T00:00:00Z'] },
  'resends show': { argv: [UUID] },
  'filters test': { argv: ['--filter', '{"path": "action", "eq": "opened"}'], stdin: '{"action": "opened"}' },
  openapi: { argv: [] },
};

function routeOf(command: AnyCommandSpec): RouteSpec | undefined {
  return apiRoutes.find((route) => route.operationId === command.operationId);
}

/** Returns the request as the client sends it: query values as text, the body as JSON. */
function onTheWire(request: Record<string, unknown>) {
  const query = Object.fromEntries(
    Object.entries((request.query ?? {}) as Record<string, unknown>)
      .filter(([, value]) => value !== undefined && value !== null)
      .map(([name, value]) => [name, String(value)]),
  );
  return {
    params: request.params,
    query,
    headers: request.headers ?? {},
    body: request.body === undefined ? undefined : JSON.parse(JSON.stringify(request.body)),
  };
}

describe('CLI commands and API routes', () => {
  test('every command names a client method', () => {
    const client = createClient({ baseUrl: DEFAULT_API_URL }) as unknown as Record<string, unknown>;
    for (const { path: commandPath, command } of allCommands()) {
      expect(routeOf(command), commandPath).toBeDefined();
      expect(typeof client[command.operationId], commandPath).toBe('function');
    }
  });

  test('every route has a command', () => {
    const used = new Set(allCommands().map(({ command }) => command.operationId));
    const withoutCommand = apiRoutes.map((route) => route.operationId).filter((id) => !used.has(id));
    expect(withoutCommand).toEqual([]);
  });

  test('every command has a sample', () => {
    const paths = allCommands().map(({ path: commandPath }) => commandPath).sort();
    expect(Object.keys(SAMPLES).sort()).toEqual(paths);
  });

  test.each(allCommands().map(({ path: commandPath, command }) => [commandPath, command] as const))(
    '%s request passes the route schemas',
    async (commandPath, command) => {
      const sample = SAMPLES[commandPath];
      expect(sample, `a sample for "${commandPath}"`).toBeDefined();
      const route = routeOf(command)!;
      const input = parseCommandArgs(command, commandPath, sample!.argv);
      const stdin = Readable.from(sample!.stdin === undefined ? [] : [Buffer.from(sample!.stdin)]);
      const request = (await command.request(input, { stdin })) as Record<string, unknown>;

      const declared: string[] = (['params', 'query', 'headers', 'body'] as const).filter(
        (part) => route[part] !== undefined,
      );
      const sent = Object.keys(request ?? {}).filter((part) => request[part] !== undefined);
      expect(sent.filter((part) => !declared.includes(part)), 'parts the route does not declare').toEqual([]);

      const wire = onTheWire(request ?? {});
      if (route.params) parseWith(route.params, wire.params, 'params');
      if (route.query) parseWith(route.query, wire.query, 'query');
      if (route.headers) parseWith(route.headers, wire.headers, 'headers');
      if (route.body && wire.body !== undefined) parseWith(route.body, wire.body, 'body');
      if (isBodyRequired(route)) expect(wire.body, 'the required body').toBeDefined();
    },
  );

  test('schema check catches a bad request', () => {
    // The table above relies on parseWith raising for a request that breaks
    // the contract.
    const route: RouteSpec = apiRoutes.find((candidate) => candidate.operationId === 'createReceiver')!;
    expect(() => parseWith(route.body!, { name: 'x', endpoint: 'https://a.example', subscriptions: 'a.b' }, 'body')).toThrow(
      /subscriptions/,
    );
  });

  test('global options differ from command options', () => {
    for (const { path: commandPath, command } of allCommands()) {
      for (const name of Object.keys(GLOBAL_OPTIONS)) {
        expect(command.options[name], `--${name} of "${commandPath}"`).toBeUndefined();
      }
    }
  });

  test('types reject commands off the contract', () => {
    // tsc checks these lines: `npx tsc -p .` fails when a directive below
    // has no error to expect, so the command spec types must keep rejecting
    // an operationId that is no client method and a request of the wrong shape.
    const unknownOperation = defineCommand({
      kind: 'command',
      name: 'unknown',
      // @ts-expect-error `listUsers` is no operationId of the API.
      operationId: 'listUsers',
      summary: 'x',
      arguments: [],
      options: {},
      async request() {
        return {};
      },
    });
    const wrongRequest = defineCommand({
      kind: 'command',
      name: 'wrong',
      operationId: 'getEvent',
      summary: 'x',
      arguments: [],
      options: {},
      // @ts-expect-error getEvent takes `params.id`, not a body.
      async request() {
        return { body: { id: UUID } };
      },
    });
    expect(unknownOperation.name).toBe('unknown');
    expect(wrongRequest.name).toBe('wrong');
  });
});

describe('CLI settings', () => {
  test('default URL is the API default', () => {
    const config = loadConfig({});
    expect(DEFAULT_API_URL).toBe(`http://${config.apiHost}:${config.apiPort}`);
    expect(new URL(DEFAULT_API_URL).hostname).toBe('127.0.0.1');
    expect(resolveApiSettings({}, {})).toMatchObject({ apiUrl: DEFAULT_API_URL, apiUrlSource: 'default', token: undefined });
  });

  test('flags win over the environment', () => {
    const env = { WEBHOOKS_API_URL: 'http://127.0.0.1:4000', API_TOKEN: 'from-env', WEBHOOKS_TIMEOUT_MS: '5000' };
    expect(resolveApiSettings({}, env)).toEqual({
      apiUrl: 'http://127.0.0.1:4000',
      apiUrlSource: 'WEBHOOKS_API_URL',
      token: 'from-env',
      timeoutMs: 5000,
    });
    expect(resolveApiSettings({ apiUrl: 'http://127.0.0.1:5000/api', token: 'from-flag' }, env)).toMatchObject({
      apiUrl: 'http://127.0.0.1:5000/api',
      apiUrlSource: '--api-url',
      token: 'from-flag',
    });
  });
});

/** Local modules and packages that producers/cli.ts loads, following imports that stay at run time. */
function runtimeImports(entry: string): { files: string[]; packages: string[] } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const pending = [path.resolve(REPOSITORY, entry)];
  const importPattern = /(?:^|\n)\s*(?:import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/g;
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    const source = readFileSync(file, 'utf8');
    for (const match of source.matchAll(importPattern)) {
      if (match[1] !== undefined) continue;
      const specifier = match[2]!;
      if (specifier.startsWith('.')) {
        pending.push(path.resolve(path.dirname(file), specifier.replace(/\.js$/, '.ts')));
      } else {
        packages.add(specifier);
      }
    }
  }
  return {
    files: [...files].map((file) => path.relative(REPOSITORY, file)).sort(),
    packages: [...packages].sort(),
  };
}

describe('CLI dependencies', () => {
  test('reaches no store or service', () => {
    const { files, packages } = runtimeImports('producers/cli.ts');
    expect(files).toContain('producers/cli/run-cli.ts');
    expect(files).toContain('producers/api/contract/client.ts');
    const allowed = (file: string) =>
      file === 'producers/cli.ts' ||
      file.startsWith('producers/cli/') ||
      (file.startsWith('producers/api/contract/') && file !== 'producers/api/contract/server.ts') ||
      ['shared/errors.ts', 'shared/event-class.ts', 'shared/ids.ts'].includes(file);
    expect(files.filter((file) => !allowed(file))).toEqual([]);
    expect(packages.filter((name) => !name.startsWith('node:') && name !== 'zod')).toEqual([]);
  });

  test('import scan finds store modules', () => {
    // The scan must see what the API itself loads, or the test above proves nothing.
    const { files, packages } = runtimeImports('producers/api/start-api.ts');
    expect(files).toContain('shared/queues.ts');
    expect(packages).toContain('fastify');
  });
});
