import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { buildApiDocument } from '../producers/api/contract/document.js';

/** The checked-in OpenAPI document, which a test compares with the routes. */
export const OPENAPI_FILE = fileURLToPath(new URL('../docs/openapi.json', import.meta.url));

/** Renders the document as the file stores it: two-space indents and a final newline. */
export function renderApiDocument(): string {
  return `${JSON.stringify(buildApiDocument(), null, 2)}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await writeFile(OPENAPI_FILE, renderApiDocument());
  console.log(`wrote ${OPENAPI_FILE}`);
}
