// The libdm config format LVM writes its VG text in: `key = value` and
// `name { ... }` entries, values are numbers, quoted strings, bare words or flat
// arrays of those; `#` comments. One pass over the characters with an explicit
// stack (no recursion, so hostile nesting cannot overflow the JS stack).
//
// The trap: a token starting with a digit is a number only where a value is
// expected (after `=`, `[` or `,`). Elsewhere it is a name: VG and LV names are
// often UUIDs such as `5e1f6c2a-... {`.
import { badLvm } from './errors';

export type ConfigValue = number | string | Array<number | string>;

export interface ConfigSection {
  name: string;
  /** Character offset of the name in the text. */
  offset: number;
  values: Map<string, { value: ConfigValue; offset: number }>;
  sections: Map<string, ConfigSection>;
}

const enum C {
  TAB = 9, LF = 10, CR = 13, SPACE = 32, QUOTE = 34, HASH = 35, APOS = 39, COMMA = 44, MINUS = 45, DOT = 46,
  D0 = 48, D9 = 57, EQ = 61, LBRACKET = 91, BACKSLASH = 92, RBRACKET = 93, LBRACE = 123, RBRACE = 125, PLUS = 43,
}

const isSpace = (c: number): boolean => c === C.SPACE || c === C.LF || c === C.TAB || c === C.CR || c === 11 || c === 12;
/** Characters that end a bare word. */
const ends = (c: number): boolean =>
  isSpace(c) || c === C.HASH || c === C.EQ || c === C.LBRACE || c === C.RBRACE || c === C.LBRACKET || c === C.RBRACKET || c === C.COMMA || c === C.QUOTE || c === C.APOS;

function section(name: string, offset: number): ConfigSection {
  return { name, offset, values: new Map(), sections: new Map() };
}

class Scanner {
  pos = 0;
  constructor(readonly text: string, readonly what: string) {}

  fail(offset: number, value: unknown, why: string): never {
    throw badLvm(this.what, offset, value, why, 'text offset');
  }

  /** Skips whitespace and comments; returns the next character code or -1 at the end. */
  peek(): number {
    const t = this.text;
    for (;;) {
      const c = t.charCodeAt(this.pos);
      if (Number.isNaN(c)) return -1;
      if (isSpace(c)) this.pos++;
      else if (c === C.HASH) {
        const nl = t.indexOf('\n', this.pos);
        this.pos = nl < 0 ? t.length : nl + 1;
      } else return c;
    }
  }

  word(): string {
    const start = this.pos;
    const t = this.text;
    while (this.pos < t.length && !ends(t.charCodeAt(this.pos))) this.pos++;
    if (this.pos === start) this.fail(start, t.charAt(start) || 'end of text', 'where a name or value was expected');
    return t.slice(start, this.pos);
  }

  quoted(): string {
    const t = this.text;
    const q = t.charCodeAt(this.pos);
    const start = this.pos++;
    let out = '';
    let from = this.pos;
    for (;;) {
      if (this.pos >= t.length) this.fail(start, t.slice(start, start + 40), 'is a string without its closing quote');
      const c = t.charCodeAt(this.pos);
      if (c === q) break;
      // Double-quoted strings escape `"` and `\` with a backslash; single-quoted ones have no escapes.
      if (c === C.BACKSLASH && q === C.QUOTE && this.pos + 1 < t.length) {
        out += t.slice(from, this.pos);
        from = ++this.pos;
      }
      this.pos++;
    }
    out += t.slice(from, this.pos++);
    return out;
  }

  /** A value after `=`, `[` or `,`: number, string or bare word. */
  scalar(): number | string {
    const c = this.peek();
    if (c === C.QUOTE || c === C.APOS) return this.quoted();
    const start = this.pos;
    const w = this.word();
    if ((c >= C.D0 && c <= C.D9) || c === C.MINUS || c === C.PLUS || c === C.DOT) {
      if (!/^[-+]?(\d+(\.\d*)?|\.\d+)$/.test(w)) this.fail(start, w, 'is not a number');
      const n = Number(w);
      if (!w.includes('.') && !Number.isSafeInteger(n)) this.fail(start, w, 'is beyond 2^53');
      return n;
    }
    return w;
  }

  value(): ConfigValue {
    if (this.peek() !== C.LBRACKET) return this.scalar();
    const start = this.pos++;
    const out: Array<number | string> = [];
    if (this.peek() === C.RBRACKET) {
      this.pos++;
      return out;
    }
    for (;;) {
      if (this.peek() === -1) this.fail(start, '[', 'opens an array that is never closed');
      if (this.peek() === C.LBRACKET) this.fail(this.pos, '[', 'nests an array (LVM arrays are flat)');
      out.push(this.scalar());
      const c = this.peek();
      this.pos++;
      if (c === C.RBRACKET) return out;
      if (c !== C.COMMA) this.fail(this.pos - 1, c === -1 ? 'end of text' : String.fromCharCode(c), 'where "," or "]" was expected in an array');
    }
  }
}

/**
 * Parses a whole text into its root section. `what` names the text in errors
 * ("mda0 committed text"). Duplicate keys are refused: LVM never writes them.
 */
export function parseConfig(text: string, what = 'metadata text'): ConfigSection {
  const s = new Scanner(text, what);
  const root = section('', 0);
  const stack: ConfigSection[] = [root];
  for (;;) {
    const c = s.peek();
    const top = stack[stack.length - 1];
    if (c === -1) {
      if (stack.length > 1) s.fail(top.offset, top.name, 'opens a section that is never closed');
      return root;
    }
    if (c === C.RBRACE) {
      if (stack.length === 1) s.fail(s.pos, '}', 'closes a section that was never opened');
      stack.pop();
      s.pos++;
      continue;
    }
    const at = s.pos;
    const name = c === C.QUOTE || c === C.APOS ? s.quoted() : s.word();
    const next = s.peek();
    if (next === C.LBRACE) {
      s.pos++;
      if (top.sections.has(name) || top.values.has(name)) s.fail(at, name, 'appears twice in its section');
      const child = section(name, at);
      top.sections.set(name, child);
      stack.push(child);
    } else if (next === C.EQ) {
      s.pos++;
      if (top.sections.has(name) || top.values.has(name)) s.fail(at, name, 'appears twice in its section');
      top.values.set(name, { value: s.value(), offset: at });
    } else {
      s.fail(s.pos, next === -1 ? 'end of text' : text.charAt(s.pos), `follows "${name}" where "=" or "{" was expected`);
    }
  }
}
