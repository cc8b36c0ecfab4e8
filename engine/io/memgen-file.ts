/**
 * The `.memgen` prompt file format (README, "Prompt files"): a parser that never throws. Every
 * problem becomes a ParseError with the exact range of the offending text.
 *
 *   # a comment (a line starting with '#', or ' #' after content)
 *   run: runs/arithmetic-tiny     header: key: value lines, only before the first prompt
 *   site: ln2                     keys: run (path), site (resid_pre | ln2 | resid_post),
 *   topN: 0.1                           topN (fraction in (0, 1]), alpha (finite number)
 *   alpha: 5
 *   steerAt: prompt               where a steer adds its shift: all (the last prompt position and every
 *                                       generated one, the paper's; default) | prompt (the last prompt position only)
 *   task: arithmetic              a plain Hugging Face folder's task (run: names one): task (arithmetic |
 *   taskSeed: 2                         incontext | cipher), taskSeed (integer, default 0), taskScale
 *                                       (tiny | paper, default tiny); a memgen run has its own task
 *   12+34+56+78=                  a prompt: one line
 *   12+34+56+78= => mem           ... with an expected behaviour (gen | mem | other) or answer text
 *   >>>                           a block: the lines up to '<<<' form one prompt, joined by spaces
 *   Kevin is horse. Kevin is blue.
 *   What color is Kevin?
 *   <<< => blue                   the expectation goes after the closing marker
 *
 * Ranges are 0-based lines and UTF-16 columns, as LSP's, end exclusive.
 */

export interface Pos {
  line: number;
  character: number;
}

export interface Range {
  start: Pos;
  end: Pos;
}

export type HeaderKey = 'run' | 'site' | 'topN' | 'alpha' | 'steerAt' | 'task' | 'taskSeed' | 'taskScale';
export const HEADER_KEYS: readonly HeaderKey[] = ['run', 'site', 'topN', 'alpha', 'steerAt', 'task', 'taskSeed', 'taskScale'];
/** models/hooks.ts STEER_AT (io/ sits below models/; test/unit/memgen-file.test.ts checks they agree). */
export const HEADER_STEER_AT = ['all', 'prompt'] as const;
export const SITES = ['resid_pre', 'ln2', 'resid_post'] as const;
/** The task names (tasks/index.ts TASK_NAMES; io/ sits below tasks/, test/unit/plain-folder-analysis.test.ts checks they agree). */
export const HEADER_TASKS = ['arithmetic', 'incontext', 'cipher'] as const;
export const HEADER_SCALES = ['tiny', 'paper'] as const;

export interface HeaderValue<T> {
  value: T;
  range: Range;
}

export interface Header {
  run?: HeaderValue<string>;
  site?: HeaderValue<(typeof SITES)[number]>;
  topN?: HeaderValue<number>;
  alpha?: HeaderValue<number>;
  steerAt?: HeaderValue<(typeof HEADER_STEER_AT)[number]>;
  task?: HeaderValue<(typeof HEADER_TASKS)[number]>;
  taskSeed?: HeaderValue<number>;
  taskScale?: HeaderValue<(typeof HEADER_SCALES)[number]>;
}

export interface PromptEntry {
  /** The prompt text (block lines joined by one space, trimmed). */
  text: string;
  /** From the first character of the prompt to the end of its text (a block: opening to closing marker). */
  range: Range;
  /** The line lenses and hovers attach to (a block: the opening marker's line). */
  line: number;
  /** Expected behaviour or answer text after `=>`, and its range. */
  expected: HeaderValue<string> | null;
}

export interface ParseError {
  message: string;
  range: Range;
}

export interface MemgenFile {
  header: Header;
  prompts: PromptEntry[];
  errors: ParseError[];
}

const range = (line: number, start: number, end: number): Range => ({ start: { line, character: start }, end: { line, character: end } });

/** Content of a line without its comment: the index where a comment starts, or the length. */
function commentStart(text: string): number {
  if (/^\s*#/.test(text)) return text.indexOf('#');
  const m = /\s#/.exec(text);
  return m ? m.index : text.length;
}

/** Splits `content` at ' => ' into the prompt part and the expectation (with its columns). */
function splitExpected(content: string, line: number, offset: number): { body: string; bodyStart: number; bodyEnd: number; expected: HeaderValue<string> | null; error?: ParseError } {
  const at = content.indexOf('=>');
  const trimmedRange = (s: string, from: number) => {
    const lead = s.length - s.trimStart().length;
    return { start: from + lead, end: from + lead + s.trim().length };
  };
  if (at < 0) {
    const r = trimmedRange(content, offset);
    return { body: content.trim(), bodyStart: r.start, bodyEnd: r.end, expected: null };
  }
  const before = content.slice(0, at);
  const after = content.slice(at + 2);
  const rb = trimmedRange(before, offset);
  const ra = trimmedRange(after, offset + at + 2);
  if (after.trim() === '') {
    return { body: before.trim(), bodyStart: rb.start, bodyEnd: rb.end, expected: null, error: { message: "'=>' must be followed by the expected behaviour (gen, mem, other) or answer", range: range(line, offset + at, offset + at + 2) } };
  }
  return { body: before.trim(), bodyStart: rb.start, bodyEnd: rb.end, expected: { value: after.trim(), range: range(line, ra.start, ra.end) } };
}

export function parseMemgen(source: string): MemgenFile {
  const lines = source.split(/\r\n|\r|\n/);
  const out: MemgenFile = { header: {}, prompts: [], errors: [] };
  let block: { startLine: number; startChar: number; parts: string[] } | null = null;

  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    const content = raw.slice(0, commentStart(raw));
    const trimmed = content.trim();
    const lead = content.length - content.trimStart().length;

    if (block) {
      if (trimmed.startsWith('<<<')) {
        const rest = content.slice(lead + 3);
        const sp = splitExpected(rest, i, lead + 3);
        if (sp.error) out.errors.push(sp.error);
        if (sp.body !== '') out.errors.push({ message: "nothing may follow '<<<' except '=> expected'", range: range(i, sp.bodyStart, sp.bodyEnd) });
        const text = block.parts.join(' ').replace(/\s+/g, ' ').trim();
        const r: Range = { start: { line: block.startLine, character: block.startChar }, end: { line: i, character: lead + 3 } };
        if (text === '') out.errors.push({ message: 'empty block: write the prompt between >>> and <<<', range: r });
        else out.prompts.push({ text, range: r, line: block.startLine, expected: sp.expected });
        block = null;
      } else {
        block.parts.push(trimmed);
      }
      continue;
    }
    if (trimmed === '') continue;

    if (trimmed.startsWith('>>>')) {
      const rest = trimmed.slice(3).trim();
      if (rest !== '') {
        const at = content.indexOf(rest, lead + 3);
        out.errors.push({ message: "'>>>' opens a block and stands alone on its line", range: range(i, at, at + rest.length) });
      }
      block = { startLine: i, startChar: lead, parts: [] };
      continue;
    }
    if (trimmed.startsWith('<<<')) {
      out.errors.push({ message: "'<<<' without an opening '>>>'", range: range(i, lead, lead + 3) });
      continue;
    }

    const kv = /^([A-Za-z][A-Za-z0-9_]*)\s*:(.*)$/.exec(trimmed);
    if (kv && !trimmed.includes('=>')) {
      const key = kv[1];
      const keyRange = range(i, lead, lead + key.length);
      const valueRaw = kv[2];
      const valueText = valueRaw.trim();
      const valueStart = lead + trimmed.length - valueRaw.length + (valueRaw.length - valueRaw.trimStart().length);
      const valueRange = range(i, valueStart, valueStart + valueText.length);
      if (out.prompts.length > 0) {
        out.errors.push({ message: `header line '${key}:' after the first prompt; move it to the top of the file`, range: keyRange });
        continue;
      }
      if (!(HEADER_KEYS as readonly string[]).includes(key)) {
        out.errors.push({ message: `unknown header key '${key}'; the keys are ${HEADER_KEYS.join(', ')}`, range: keyRange });
        continue;
      }
      if ((out.header as Record<string, unknown>)[key] !== undefined) {
        out.errors.push({ message: `'${key}' is given twice`, range: keyRange });
        continue;
      }
      if (valueText === '') {
        out.errors.push({ message: `'${key}:' needs a value`, range: range(i, lead, lead + trimmed.length) });
        continue;
      }
      /** valueText when it is one of `list`, else an error naming the list. */
      const oneOf = <T extends string>(list: readonly T[], what: string, plural: string): T | undefined => {
        if ((list as readonly string[]).includes(valueText)) return valueText as T;
        out.errors.push({ message: `unknown ${what} '${valueText}'; the ${plural} are ${list.join(', ')}`, range: valueRange });
        return undefined;
      };
      switch (key as HeaderKey) {
        case 'run':
          out.header.run = { value: valueText, range: valueRange };
          break;
        case 'site': {
          const v = oneOf(SITES, 'site', 'sites');
          if (v !== undefined) out.header.site = { value: v, range: valueRange };
          break;
        }
        case 'topN': {
          const v = Number(valueText);
          if (!/^[0-9.eE+-]+$/.test(valueText) || !(v > 0 && v <= 1)) out.errors.push({ message: `topN must be a fraction in (0, 1], got '${valueText}'`, range: valueRange });
          else out.header.topN = { value: v, range: valueRange };
          break;
        }
        case 'alpha': {
          const v = Number(valueText);
          if (!/^[0-9.eE+-]+$/.test(valueText) || !Number.isFinite(v)) out.errors.push({ message: `alpha must be a number, got '${valueText}'`, range: valueRange });
          else out.header.alpha = { value: v, range: valueRange };
          break;
        }
        case 'steerAt': {
          const v = oneOf(HEADER_STEER_AT, 'steerAt', 'choices');
          if (v !== undefined) out.header.steerAt = { value: v, range: valueRange };
          break;
        }
        case 'task': {
          const v = oneOf(HEADER_TASKS, 'task', 'tasks');
          if (v !== undefined) out.header.task = { value: v, range: valueRange };
          break;
        }
        case 'taskSeed': {
          const v = Number(valueText);
          if (!/^-?[0-9]+$/.test(valueText) || !Number.isSafeInteger(v)) out.errors.push({ message: `taskSeed must be an integer, got '${valueText}'`, range: valueRange });
          else out.header.taskSeed = { value: v, range: valueRange };
          break;
        }
        case 'taskScale': {
          const v = oneOf(HEADER_SCALES, 'taskScale', 'scales');
          if (v !== undefined) out.header.taskScale = { value: v, range: valueRange };
          break;
        }
      }
      continue;
    }

    const sp = splitExpected(content, i, 0);
    if (sp.error) out.errors.push(sp.error);
    if (sp.body === '') {
      out.errors.push({ message: "a prompt is missing before '=>'", range: range(i, lead, lead + trimmed.length) });
      continue;
    }
    out.prompts.push({ text: sp.body.replace(/\s+/g, ' '), range: range(i, sp.bodyStart, sp.bodyEnd), line: i, expected: sp.expected });
  }
  if (block) {
    out.errors.push({ message: "block opened here is never closed with '<<<'", range: range(block.startLine, block.startChar, block.startChar + 3) });
  }
  return out;
}

/** The prompt that owns a line (its start line, or any line of its block), if any. */
export function promptAt(file: MemgenFile, line: number): PromptEntry | undefined {
  return file.prompts.find((p) => line >= p.range.start.line && line <= p.range.end.line);
}
