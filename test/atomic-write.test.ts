/** src/shared/atomic-write.ts: the one way TypeScript writes a file that readers must never see half of. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test from 'ava';
import { writeFileAtomic } from '../src/shared/atomic-write';

function tempDir(t: { teardown: (fn: () => void) => void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'csr-atomic-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('writes the content into a new folder and replaces an old file whole, leaving no temporary file', (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'deep', 'state.json');
  writeFileAtomic(file, 'old\n');
  writeFileAtomic(file, Buffer.from('new\n'), { durable: true });
  t.is(fs.readFileSync(file, 'utf8'), 'new\n');
  t.deepEqual(fs.readdirSync(path.dirname(file)), ['state.json']);
});

test('a failed write leaves the old file as it was and removes its temporary file', (t) => {
  const dir = tempDir(t);
  // A folder in the target's place: the rename fails after the temporary file was written.
  const target = path.join(dir, 'taken');
  fs.mkdirSync(target);
  fs.writeFileSync(path.join(target, 'inside'), 'kept');
  t.throws(() => writeFileAtomic(target, 'x'));
  t.deepEqual(fs.readdirSync(dir), ['taken']);
  t.is(fs.readFileSync(path.join(target, 'inside'), 'utf8'), 'kept');
});
