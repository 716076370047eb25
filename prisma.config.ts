import path from 'node:path';
import { PrismaPg } from '@prisma/adapter-pg';
import { defineConfig } from 'prisma/config';

// Without DATABASE_URL the Prisma CLI tries to download a schema engine,
// which fails offline, so it gets the same default as the application.
// Defining it here also stops the CLI from reading `.env`.
process.env.DATABASE_URL ??= 'postgresql://root@127.0.0.1:5432/webhooks';
// The CLI also sends a usage check to checkpoint.prisma.io after each
// command; turning it off keeps install and generate to the npm registry.
process.env.CHECKPOINT_DISABLE ??= '1';
const databaseUrl = process.env.DATABASE_URL;

export default defineConfig({
  // The TypeScript engine talks to PostgreSQL through node-postgres, so no
  // engine binary is needed at install or run time.
  experimental: { adapter: true },
  engine: 'js',
  adapter: async () => new PrismaPg({ connectionString: databaseUrl }),
  schema: path.join('prisma', 'schema.prisma'),
  migrations: { path: path.join('prisma', 'migrations') },
});
