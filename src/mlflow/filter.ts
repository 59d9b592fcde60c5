/**
 * Build `runs/search` filter strings. MLflow strips the quotes around a value without unescaping
 * anything inside, so a value is quoted with whichever quote it does not contain, and a value that
 * cannot be quoted is refused here rather than silently matching nothing.
 */

function quoteValue(value: string, what: string): string {
  if (value.includes('\\')) {
    throw new TypeError(`${what}: MLflow filter strings cannot carry a backslash, got ${JSON.stringify(value)}`);
  }
  if (!value.includes("'")) return `'${value}'`;
  if (!value.includes('"')) return `"${value}"`;
  throw new TypeError(`${what}: MLflow filter strings cannot carry both ' and ", got ${JSON.stringify(value)}`);
}

/** `tags.\`key\` = 'value'`; backticks let keys contain dots (`mlflow.parentRunId`). */
export function tagEquals(key: string, value: string): string {
  if (key === '' || key.includes('`')) {
    throw new TypeError(`tag key: expected a non-empty key without backticks, got ${JSON.stringify(key)}`);
  }
  return `tags.\`${key}\` = ${quoteValue(value, `tag ${key}`)}`;
}

/** All tags equal: `tags.\`a\` = '1' AND tags.\`b\` = '2'` (MLflow filters support AND only). */
export function tagsFilter(tags: Record<string, string>): string {
  return Object.entries(tags)
    .map(([key, value]) => tagEquals(key, value))
    .join(' AND ');
}
