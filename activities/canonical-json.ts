/**
 * Python's `json.dumps(value, sort_keys=True, default=str)`, byte for byte, for values that went
 * through JSON. The compute side hashes its spec that way into `manifest.spec_hash`; the activity
 * must compute the same hash to decide, without starting Python, that a step is already done.
 */
import { createHash } from 'node:crypto';

function pythonString(text: string): string {
  // ensure_ascii=True: everything outside printable ASCII becomes \uXXXX of its UTF-16 code units,
  // which is what Python does too (astral characters as surrogate pairs).
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    const char = text[i];
    if (char === '"') out += '\\"';
    else if (char === '\\') out += '\\\\';
    else if (unit >= 0x20 && unit <= 0x7e) out += char;
    else if (char === '\n') out += '\\n';
    else if (char === '\r') out += '\\r';
    else if (char === '\t') out += '\\t';
    else if (char === '\b') out += '\\b';
    else if (char === '\f') out += '\\f';
    else out += `\\u${unit.toString(16).padStart(4, '0')}`;
  }
  return `${out}"`;
}

/** Python's `repr(float)`: shortest round-trip digits, exponent form below 1e-4 and from 1e16. */
function pythonFloat(value: number): string {
  if (value === 0) return Object.is(value, -0) ? '-0.0' : '0.0';
  const [mantissa, exponentText] = Math.abs(value).toExponential().split('e') as [string, string];
  const digits = mantissa.replace('.', '');
  const exponent = Number(exponentText);
  const sign = value < 0 ? '-' : '';
  if (exponent < -4 || exponent >= 16) {
    const head = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const expSign = exponent < 0 ? '-' : '+';
    return `${sign}${head}e${expSign}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  if (exponent < 0) return `${sign}0.${'0'.repeat(-exponent - 1)}${digits}`;
  const whole = digits.slice(0, exponent + 1).padEnd(exponent + 1, '0');
  const fraction = digits.slice(exponent + 1) || '0';
  return `${sign}${whole}.${fraction}`;
}

function pythonNumber(value: number): string {
  const text = JSON.stringify(value);
  // JSON.stringify writes NaN/Infinity as null, and Python then reads None.
  if (text === 'null') return 'null';
  // Python's json reads a literal without '.', 'e' or 'E' as an int and writes its digits back unchanged.
  return /[.eE]/.test(text) ? pythonFloat(value) : text;
}

function compareCodePoints(a: string, b: string): number {
  // Python sorts str keys by code point; JS's default sort compares UTF-16 units, which differ above U+FFFF.
  const left = Array.from(a, (c) => c.codePointAt(0) as number);
  const right = Array.from(b, (c) => c.codePointAt(0) as number);
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    if (left[i] !== right[i]) return (left[i] as number) - (right[i] as number);
  }
  return left.length - right.length;
}

function dump(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') return pythonNumber(value);
  if (typeof value === 'string') return pythonString(value);
  if (Array.isArray(value)) return `[${value.map(dump).join(', ')}]`;
  const entries = Object.keys(value as object)
    .sort(compareCodePoints)
    .map((key) => `${pythonString(key)}: ${dump((value as Record<string, unknown>)[key])}`);
  return `{${entries.join(', ')}}`;
}

/**
 * The text Python's `json.dumps(v, sort_keys=True, default=str)` produces for `value` after Python
 * has read `JSON.stringify(value)` (so `undefined` members vanish and `toJSON` applies, as they do on disk).
 */
export function pythonJsonDumps(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) throw new TypeError(`cannot write ${typeof value} as JSON`);
  return dump(JSON.parse(text));
}

/** sha256 (hex) of a spec as the compute contract's `write_manifest` hashes it into `spec_hash`. */
export function specHash(spec: Record<string, unknown>): string {
  return createHash('sha256').update(pythonJsonDumps(spec), 'utf8').digest('hex');
}
