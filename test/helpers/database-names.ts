/** URL of the server's maintenance database. */
export function adminUrl(): string {
  return databaseUrlFor('postgres');
}

/** The test server's URL (TEST_DATABASE_URL) with another database name. */
export function databaseUrlFor(database: string): string {
  const url = new URL(
    process.env.TEST_DATABASE_URL ?? 'postgresql://root@127.0.0.1:5432/postgres',
  );
  url.pathname = `/${database}`;
  return url.toString();
}
