// Checks docker-compose.yml and the Dockerfile against the code, because no
// Docker engine runs in the test environment: every command, file, script
// and environment variable they name must exist and be what the code reads.
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../shared/config.js';
import { parseRoles } from '../scripts/roles.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function readText(relative: string): string {
  return readFileSync(path.join(ROOT, relative), 'utf8');
}

function existsInRepo(relative: string): boolean {
  return existsSync(path.join(ROOT, relative));
}

interface ComposeService {
  build?: unknown;
  image?: string;
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: unknown[];
  container_name?: string;
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: { test: string | string[]; interval?: string; timeout?: string };
  restart?: string;
}

// Compose files use YAML merge keys (`<<: *anchor`), which the yaml package
// applies only when asked.
const compose = parse(readText('docker-compose.yml'), { merge: true }) as {
  services: Record<string, ComposeService>;
};
const services = Object.entries(compose.services);
/** Services built from this repository's Dockerfile, as opposed to postgres and redis. */
const appServices = services.filter(([, service]) => service.build !== undefined);

const packageJson = JSON.parse(readText('package.json')) as {
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
};

/** Names of the environment variables that loadConfig reads, taken from its source. */
const configVariables = new Set(
  [...readText('shared/config.ts').matchAll(/'([A-Z][A-Z0-9_]*)'/g)].map((match) => match[1]!),
);

function commandWords(command: string | string[] | undefined): string[] {
  if (command === undefined) return [];
  return Array.isArray(command) ? command : command.split(/\s+/).filter((word) => word !== '');
}

/** Words that name a file of the repository, such as `workers/delivery/main.ts`. */
function filePaths(words: string[]): string[] {
  return words.filter(
    (word) => !word.startsWith('-') && /^[\w.-]+(\/[\w.-]+)*\.(ts|mts|js|mjs|cjs|json)$/.test(word),
  );
}

/**
 * Resolves `${NAME:-default}` and `${NAME}` the way Compose does when NAME
 * is unset, which is the case that must work out of the box.
 */
function interpolateUnset(value: string): string {
  return value.replace(/\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}/g, (_match, _name, fallback) => fallback ?? '');
}

function environmentOf(service: ComposeService): Record<string, string> {
  const environment: Record<string, string> = {};
  const raw = service.environment ?? {};
  const entries: [string, unknown][] = Array.isArray(raw)
    ? raw.map((item) => {
        const [name, ...rest] = item.split('=');
        return [name!, rest.join('=')];
      })
    : Object.entries(raw);
  for (const [name, value] of entries) {
    environment[name] = interpolateUnset(String(value ?? ''));
  }
  return environment;
}

/** Returns the roles that a service's `scripts/start.ts <role...>` command starts, or null for other commands. */
function startedRoles(service: ComposeService): string[] | null {
  const words = commandWords(service.command);
  const index = words.indexOf('scripts/start.ts');
  return index === -1 ? null : words.slice(index + 1);
}

/** Returns the names that a command reads as `process.env.NAME`, such as in a health check. */
function environmentReads(command: string | string[] | undefined): string[] {
  return [...commandWords(command).join(' ').matchAll(/process\.env\.([A-Z][A-Z0-9_]*)/g)].map((match) => match[1]!);
}

interface DockerInstruction {
  stage: number;
  keyword: string;
  args: string;
}

/** Parses the Dockerfile into instructions, joining continued lines, each with its stage index. */
function dockerInstructions(): DockerInstruction[] {
  const logicalLines: string[] = [];
  let pending = '';
  for (const line of readText('Dockerfile').split('\n')) {
    const trimmed = line.trim();
    if (pending === '' && (trimmed === '' || trimmed.startsWith('#'))) continue;
    if (trimmed.endsWith('\\')) {
      pending += `${trimmed.slice(0, -1)} `;
      continue;
    }
    logicalLines.push(pending + trimmed);
    pending = '';
  }
  let stage = -1;
  return logicalLines.map((line) => {
    const [keyword, ...rest] = line.split(/\s+/);
    if (keyword!.toUpperCase() === 'FROM') stage += 1;
    return { stage, keyword: keyword!.toUpperCase(), args: rest.join(' ') };
  });
}

const instructions = dockerInstructions();
const finalStage = Math.max(...instructions.map((instruction) => instruction.stage));

/** `ENV` settings of the final stage, which every container of the image starts with. */
const imageEnvironment: Record<string, string> = Object.fromEntries(
  instructions
    .filter((instruction) => instruction.stage === finalStage && instruction.keyword === 'ENV')
    .flatMap((instruction) => [...instruction.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=(\S+)/g)])
    .map((match) => [match[1]!, match[2]!]),
);

/** Image settings that are not read by loadConfig, and what reads them. */
const IMAGE_ONLY_VARIABLES: Record<string, string> = {
  NODE_ENV: 'Node.js libraries',
  CHECKPOINT_DISABLE: 'the Prisma CLI',
};

/** Sources and destination of a COPY, with its --from stage when given. */
function copyParts(args: string) {
  const words = args.split(/\s+/);
  const flags = words.filter((word) => word.startsWith('--'));
  const paths = words.filter((word) => !word.startsWith('--'));
  const from = flags.find((flag) => flag.startsWith('--from='))?.slice('--from='.length);
  return { from, sources: paths.slice(0, -1), destination: paths[paths.length - 1]! };
}

/**
 * Repository paths that the final image contains at the same path under its
 * WORKDIR, from the COPY instructions of the final stage.
 */
const copiedIntoImage = instructions
  .filter((instruction) => instruction.stage === finalStage && instruction.keyword === 'COPY')
  .map((instruction) => copyParts(instruction.args))
  .filter((copy) => copy.from === undefined)
  .flatMap((copy) => {
    const destination = copy.destination.replace(/^\.\//, '').replace(/\/$/, '');
    return copy.sources.filter(
      (source) => destination === '' || destination === '.' || destination === source.replace(/\/$/, ''),
    );
  });

function isInImage(relative: string): boolean {
  return copiedIntoImage.some(
    (copied) => relative === copied || relative.startsWith(`${copied.replace(/\/$/, '')}/`),
  );
}

/** Follows the relative imports of `entry` and returns every repository file it loads. */
function localImportGraph(entry: string): string[] {
  const seen = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const source = readText(file);
    for (const match of source.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), match[1]!));
      const candidates = [target, target.replace(/\.js$/, '.ts'), `${target}.ts`, `${target}/index.ts`];
      const found = candidates.find((candidate) => existsInRepo(candidate) && statSync(path.join(ROOT, candidate)).isFile());
      if (found === undefined) throw new Error(`${file} imports ${match[1]}, which does not exist`);
      queue.push(found);
    }
  }
  return [...seen];
}

describe('docker-compose.yml', () => {
  test('has every role', () => {
    for (const name of ['postgres', 'redis', 'migrate', 'api', 'dispatch', 'delivery', 'dashboard']) {
      expect(compose.services[name], name).toBeDefined();
    }
  });

  test('commands name existing files and scripts', () => {
    expect(appServices.length).toBeGreaterThan(0);
    for (const [name, service] of appServices) {
      const words = commandWords(service.command);
      expect(words.length, `${name} has a command`).toBeGreaterThan(0);
      const runIndex = words.findIndex((word) => word === 'run' || word === 'run-script');
      if (words[0] === 'npm' && runIndex !== -1) {
        const script = words[runIndex + 1]!;
        expect(packageJson.scripts[script], `${name}: npm script "${script}"`).toBeDefined();
        for (const file of filePaths(commandWords(packageJson.scripts[script]))) {
          expect(existsInRepo(file), `${name}: ${file} named by npm script "${script}"`).toBe(true);
        }
      }
      if (words[0] === 'npx') {
        const binary = words.find((word, index) => index > 0 && !word.startsWith('-'))!;
        expect(existsInRepo(`node_modules/.bin/${binary}`), `${name}: npx ${binary}`).toBe(true);
      }
      const files = filePaths(words);
      for (const file of files) {
        expect(existsInRepo(file), `${name}: ${file}`).toBe(true);
        expect(isInImage(file), `${name}: ${file} is copied into the image`).toBe(true);
      }
    }
  });

  test('node --import names a production dependency', () => {
    for (const [name, service] of appServices) {
      const words = commandWords(service.command);
      words.forEach((word, index) => {
        if (word !== '--import') return;
        const loader = words[index + 1]!;
        // The image installs without devDependencies.
        expect(packageJson.dependencies[loader], `${name}: --import ${loader}`).toBeDefined();
      });
    }
  });

  test('role entry points load only files in the image', () => {
    for (const [name, service] of appServices) {
      for (const entry of filePaths(commandWords(service.command)).filter((file) => file.endsWith('.ts'))) {
        for (const file of localImportGraph(entry)) {
          expect(isInImage(file), `${name}: ${entry} loads ${file}`).toBe(true);
        }
      }
    }
  });

  test('environment names are config variables', () => {
    for (const [name, service] of appServices) {
      const environment = environmentOf(service);
      for (const variable of Object.keys(environment)) {
        expect(configVariables.has(variable), `${name}: ${variable} is read by loadConfig`).toBe(true);
      }
      expect(environment.DATABASE_URL, `${name}: DATABASE_URL`).toBeDefined();
      // Throws ConfigError naming the variable if a value is invalid.
      expect(() => loadConfig(environment), name).not.toThrow();
    }
  });

  test('app services reach the compose stores', () => {
    for (const [name, service] of appServices) {
      const config = loadConfig(environmentOf(service));
      expect(new URL(config.databaseUrl).hostname, name).toBe('postgres');
      expect(new URL(config.redisUrl).hostname, name).toBe('redis');
    }
  });

  test('api listens on all interfaces and is checked', () => {
    const api = compose.services.api!;
    const environment = environmentOf(api);
    expect(environment.API_HOST).toBe('0.0.0.0');
    const config = loadConfig(environment);
    const published = (api.ports ?? []).map((port) => interpolateUnset(String(port)));
    expect(published.some((port) => port.endsWith(`:${config.apiPort}`))).toBe(true);

    const check = commandWords(api.healthcheck?.test).join(' ');
    expect(check).toContain('/health');
    expect(readText('producers/api/health.ts')).toMatch(/app\.get\('\/health'/);
  });

  test('start.ts names known roles', () => {
    for (const [name, service] of appServices) {
      const roles = startedRoles(service);
      if (roles === null) continue;
      expect(() => parseRoles(roles), `${name}: ${roles.join(' ')}`).not.toThrow();
    }
    expect(startedRoles(compose.services.api!)).toEqual(['api']);
    expect(startedRoles(compose.services.dispatch!)).toEqual(['dispatch']);
    expect(startedRoles(compose.services.delivery!)).toEqual(['delivery']);
    expect(startedRoles(compose.services.dashboard!)).toEqual(['dashboard']);
  });

  test('long-running roles have health checks', () => {
    for (const name of ['api', 'dispatch', 'delivery', 'dashboard']) {
      const check = compose.services[name]!.healthcheck;
      expect(check, name).toBeDefined();
      expect(commandWords(check!.test).join(' '), name).toMatch(/\/health'/);
    }
  });

  test('health checks read set variables', () => {
    const healthServer = readText('shared/ops/health-server.ts');
    for (const [name, service] of appServices) {
      const environment = { ...imageEnvironment, ...environmentOf(service) };
      const reads = environmentReads(service.healthcheck?.test);
      for (const variable of reads) {
        expect(configVariables.has(variable), `${name}: ${variable} is read by loadConfig`).toBe(true);
        expect(environment[variable], `${name}: ${variable} is set`).toBeDefined();
      }
      if (service.healthcheck === undefined) continue;
      const config = loadConfig(environment);
      const roles = startedRoles(service) ?? [];
      if (reads.includes('HEALTH_PORT')) {
        // The health server listens only when HEALTH_PORT is not 0.
        expect(config.healthPort, `${name}: HEALTH_PORT`).toBeGreaterThan(0);
        expect(config.healthHost, `${name}: HEALTH_HOST`).toBe('0.0.0.0');
        expect(healthServer).toContain(`path === '/health'`);
      }
      if (reads.includes('API_PORT')) {
        // Only the API and the dashboard listen on API_PORT.
        expect(roles.some((role) => role === 'api' || role === 'dashboard'), `${name}: serves API_PORT`).toBe(true);
        expect(config.apiHost, `${name}: API_HOST`).toBe('0.0.0.0');
      }
    }
  });

  test('host variables are documented', () => {
    const readme = readText('README.md');
    const names = new Set([...readText('docker-compose.yml').matchAll(/\$\{([A-Z][A-Z0-9_]*)/g)].map((match) => match[1]!));
    expect(names.size).toBeGreaterThan(0);
    for (const variable of names) {
      expect(readme, `${variable} in README.md`).toContain(`\`${variable}\``);
    }
  });

  test('published and health ports are exposed', () => {
    const exposed = instructions
      .filter((instruction) => instruction.stage === finalStage && instruction.keyword === 'EXPOSE')
      .flatMap((instruction) => instruction.args.split(/\s+/));
    for (const [name, service] of appServices) {
      for (const port of service.ports ?? []) {
        const containerPort = interpolateUnset(String(port)).split(':').at(-1)!;
        expect(exposed, `${name}: container port ${containerPort}`).toContain(containerPort);
      }
      const healthPort = loadConfig({ ...imageEnvironment, ...environmentOf(service) }).healthPort;
      if (healthPort !== 0) expect(exposed, `${name}: HEALTH_PORT`).toContain(String(healthPort));
    }
  });

  test('workers can be scaled', () => {
    for (const name of ['dispatch', 'delivery']) {
      const service = compose.services[name]!;
      expect(service.container_name, name).toBeUndefined();
      expect(service.ports ?? [], name).toEqual([]);
    }
  });

  test('long-running roles wait for migrate and healthy stores', () => {
    for (const name of ['api', 'dispatch', 'delivery', 'dashboard']) {
      const service = compose.services[name]!;
      const dependsOn = service.depends_on as Record<string, { condition: string }>;
      expect(dependsOn.migrate?.condition, name).toBe('service_completed_successfully');
      expect(dependsOn.postgres?.condition, name).toBe('service_healthy');
      expect(dependsOn.redis?.condition, name).toBe('service_healthy');
      expect(service.restart, name).toBe('unless-stopped');
    }
    const migrate = compose.services.migrate!;
    const migrateDependsOn = migrate.depends_on as Record<string, { condition: string }>;
    expect(migrateDependsOn.postgres?.condition).toBe('service_healthy');
    expect(compose.services.postgres!.healthcheck).toBeDefined();
    expect(compose.services.redis!.healthcheck).toBeDefined();
  });

  test('migrate skips prisma generate', () => {
    // The runtime image cannot write shared/db/generated as the node user,
    // and the Dockerfile generated the client already.
    const words = commandWords(compose.services.migrate!.command);
    expect(words).not.toContain('generate');
    expect(words).not.toContain('db:migrate');
    expect(filePaths(words)).toContain('scripts/migrate.ts');
  });
});

describe('Dockerfile', () => {
  test('COPY sources exist', () => {
    const copies = instructions.filter((instruction) => instruction.keyword === 'COPY');
    expect(copies.length).toBeGreaterThan(0);
    for (const copy of copies.map((instruction) => copyParts(instruction.args))) {
      if (copy.from !== undefined) continue;
      for (const source of copy.sources) {
        expect(existsInRepo(source), `COPY ${source}`).toBe(true);
      }
    }
  });

  test('.dockerignore keeps COPY sources', () => {
    const ignored = readText('.dockerignore')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    for (const instruction of instructions.filter((item) => item.keyword === 'COPY')) {
      const copy = copyParts(instruction.args);
      if (copy.from !== undefined) continue;
      for (const source of copy.sources) {
        expect(ignored, `COPY ${source}`).not.toContain(source);
      }
    }
  });

  test('generates the client where schema.prisma puts it', () => {
    const generate = instructions.find(
      (instruction) => instruction.keyword === 'RUN' && instruction.args.includes('prisma generate'),
    );
    expect(generate).toBeDefined();
    expect(generate!.args).toMatch(/DATABASE_URL=\S+/);

    const output = /output\s*=\s*"([^"]+)"/.exec(readText('prisma/schema.prisma'))![1]!;
    const generatedPath = path.posix.normalize(path.posix.join('prisma', output));
    const copied = instructions
      .filter((instruction) => instruction.stage === finalStage && instruction.keyword === 'COPY')
      .map((instruction) => copyParts(instruction.args))
      .find((copy) => copy.from !== undefined && copy.sources.some((source) => source.endsWith(generatedPath)));
    expect(copied, `final stage copies ${generatedPath}`).toBeDefined();
  });

  test('final stage runs as node', () => {
    const users = instructions.filter(
      (instruction) => instruction.stage === finalStage && instruction.keyword === 'USER',
    );
    expect(users.map((instruction) => instruction.args)).toEqual(['node']);
  });

  test('ENV names are read', () => {
    expect(Object.keys(imageEnvironment).length).toBeGreaterThan(0);
    for (const variable of Object.keys(imageEnvironment)) {
      const known = configVariables.has(variable) || IMAGE_ONLY_VARIABLES[variable] !== undefined;
      expect(known, `ENV ${variable} is read by loadConfig or listed in IMAGE_ONLY_VARIABLES`).toBe(true);
    }
    expect(() => loadConfig(imageEnvironment)).not.toThrow();
  });

  test('tools that run are production dependencies', () => {
    // The image installs with --omit=dev, so every package that a RUN, CMD
    // or command runs must be in "dependencies".
    const binaries = new Set<string>();
    for (const instruction of instructions) {
      const words = instruction.keyword === 'CMD' ? (JSON.parse(instruction.args) as string[]) : instruction.args.split(/\s+/);
      words.forEach((word, index) => {
        if (word === 'npx') binaries.add(words[index + 1]!);
        if (word === '--import') binaries.add(words[index + 1]!);
      });
    }
    expect([...binaries].sort()).toEqual(['prisma', 'tsx']);
    for (const binary of binaries) {
      expect(packageJson.dependencies[binary], binary).toBeDefined();
    }
    // bin/webhooks.mjs, the CLI in the image, loads TypeScript through tsx.
    expect(readText('bin/webhooks.mjs')).toContain(`from 'tsx/esm/api'`);
  });

  test('CMD names a file in the image', () => {
    const command = instructions.filter((instruction) => instruction.keyword === 'CMD').at(-1);
    expect(command).toBeDefined();
    const words = JSON.parse(command!.args) as string[];
    for (const file of filePaths(words)) {
      expect(existsInRepo(file), file).toBe(true);
      expect(isInImage(file), file).toBe(true);
    }
  });
});
