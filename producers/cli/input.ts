import { readFile, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { ValidationError } from '../../shared/errors.js';
import { UsageError } from './command-spec.js';

export type Stdin = Readable & { isTTY?: boolean };

/**
 * Maximum size of the raw event data that the CLI reads, 64 times the API's
 * default MAX_PAYLOAD_BYTES, because input may be pretty-printed. It only
 * bounds the CLI's memory: the API checks the compact JSON against its own
 * MAX_PAYLOAD_BYTES and responds with 413 when the data is larger.
 */
export const MAX_DATA_INPUT_BYTES = 16 * 1024 * 1024;

/**
 * Reads stdin up to `limitBytes`; throws a ValidationError naming `field`
 * as soon as the input grows past the limit.
 */
async function readStdin(stdin: Stdin, limitBytes: number, field: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stdin) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    total += buffer.length;
    if (total > limitBytes) {
      throw new ValidationError(field, `stdin is larger than ${limitBytes} bytes`);
    }
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

async function readLimitedFile(path: string, limitBytes: number, field: string): Promise<Buffer> {
  try {
    const info = await stat(path);
    if (info.isFile() && info.size > limitBytes) {
      throw new ValidationError(field, `file "${path}" is larger than ${limitBytes} bytes`);
    }
    const content = await readFile(path);
    if (content.length > limitBytes) {
      throw new ValidationError(field, `file "${path}" is larger than ${limitBytes} bytes`);
    }
    return content;
  } catch (error) {
    if (error instanceof ValidationError) throw error;
    throw new ValidationError(field, `cannot read "${path}": ${(error as Error).message}`);
  }
}

/**
 * Reads one JSON value from `file`, or from stdin when `file` is absent or
 * "-". Input larger than `limitBytes` is rejected before parsing.
 */
export async function readJsonInput(options: {
  file: string | undefined;
  stdin: Stdin;
  limitBytes: number;
  commandPath: string;
}): Promise<unknown> {
  const fromStdin = options.file === undefined || options.file === '-';
  if (fromStdin && options.stdin.isTTY) {
    throw new UsageError(
      'no event data: pipe JSON on stdin or pass --file FILE',
      options.commandPath,
    );
  }
  const origin = fromStdin ? 'stdin' : `file "${options.file}"`;
  const raw = fromStdin
    ? await readStdin(options.stdin, options.limitBytes, 'data')
    : await readLimitedFile(options.file!, options.limitBytes, '--file');
  // A UTF-8 byte order mark is not JSON whitespace, and some editors add one.
  const text = raw.toString('utf8').replace(/^\uFEFF/, '');
  if (text.trim() === '') {
    throw new ValidationError('data', `${origin} is empty; pass a JSON value such as {"key": "value"}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ValidationError('data', `${origin} is not valid JSON: ${(error as Error).message}`);
  }
}

/**
 * Reads a `whsec_` secret from `path`, or from stdin when `path` is "-",
 * without the surrounding whitespace that `echo` and editors add.
 */
export async function readSecretInput(path: string, stdin: Stdin): Promise<string> {
  // A secret of 64 random bytes in whsec_ form is about 95 characters.
  const limitBytes = 4_096;
  const raw =
    path === '-'
      ? await readStdin(stdin, limitBytes, '--secret-file')
      : await readLimitedFile(path, limitBytes, '--secret-file');
  return raw.toString('utf8').trim();
}
