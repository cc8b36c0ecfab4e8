/**
 * Helpers for reading untrusted JSON (the readers of io/, models/, runs/; fuzzed in
 * test/unit/fuzz-readers.test.ts):
 *   jsonDepth(v)    nesting depth of a parsed value (a scalar is 0, [] and {} are 1), computed without
 *                   recursion. JSON.parse takes any depth, but JSON.stringify, String() and most
 *                   libraries recurse and throw a RangeError past about 10,000 levels, so readers
 *                   refuse files nested deeper than MAX_JSON_DEPTH before using them.
 *   shortJSON(v)    a value for an error message: JSON, cut to `max` characters, never throwing.
 */

/** No file the engine reads nests deeper than a few levels (tokenizer.json about 6). */
export const MAX_JSON_DEPTH = 100;

export function jsonDepth(v: unknown, stopAbove = Infinity): number {
  let max = 0;
  const stack: [unknown, number][] = [[v, 0]];
  while (stack.length > 0) {
    const [x, d] = stack.pop()!;
    if (typeof x !== 'object' || x === null) continue;
    const depth = d + 1;
    if (depth > max) {
      max = depth;
      if (max > stopAbove) return max;
    }
    for (const c of Array.isArray(x) ? x : Object.values(x)) if (typeof c === 'object' && c !== null) stack.push([c, depth]);
  }
  return max;
}

/** JSON.parse plus the depth limit; throws a plain Error without the file name (callers add it). */
export function parseJSONLimited(text: string): unknown {
  const v: unknown = JSON.parse(text);
  if (jsonDepth(v, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) throw new Error(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
  return v;
}

export function shortJSON(v: unknown, max = 80): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = Array.isArray(v) ? '[...]' : typeof v === 'object' ? '{...}' : typeof v;
  }
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}
