/**
 * Writing a file so that a reader, or a crash, never meets half of it: the bytes go to a temporary name
 * beside the target and are renamed over it (a rename within one folder is atomic on POSIX).
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Options of {@link writeFileAtomic}. */
export interface AtomicWriteOptions {
  /**
   * Also fsync the file before the rename and its folder after, so that a power cut neither loses the
   * file nor leaves it empty: for what a caller has been told is safe (the MLflow spool).
   * @default false
   */
  durable?: boolean;
}

function syncPath(target: string): void {
  const fd = fs.openSync(target, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Write `data` to `file` (its folder created if missing): readers see the old content or the new one,
 * never a part. The temporary name is unique per call, so concurrent writers do not tear each other's file.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): void {
  const folder = path.dirname(file);
  fs.mkdirSync(folder, { recursive: true });
  const temp = `${file}.${process.pid}.${randomUUID()}.tmp`;
  try {
    fs.writeFileSync(temp, data);
    if (options.durable) syncPath(temp);
    fs.renameSync(temp, file);
  } catch (error) {
    fs.rmSync(temp, { force: true });
    throw error;
  }
  if (options.durable) syncPath(folder);
}
