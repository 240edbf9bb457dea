import fc from 'fast-check'
import type { Schema } from './fixtures.js'

/**
 * Hostile inputs for the fuzz tests, derived from the JSON schemas of the API documents.
 *
 * `invalidFor(schema)` yields values a field can never accept, also after the coercion Fastify's
 * Ajv applies to bodies (`coerceTypes: 'array'` turns 1 into "1", true into 1, "x" into ["x"]),
 * so a body carrying one of them must get a 4xx. `hostileString` yields strings that are well
 * typed but nasty (NUL, lone surrogates, bidi controls, huge), which must never cause a 5xx.
 */

/**
 * Runs are reproducible: a fixed seed unless FUZZ_SEED is set (a number, or `random` to explore;
 * fast-check prints the seed of a failing run).
 */
export function fuzzRuns(numRuns: number): { numRuns: number; seed?: number } {
  const env = process.env.FUZZ_SEED
  if (env === 'random') return { numRuns }
  return { numRuns, seed: env === undefined ? 20_261_125 : Number(env) }
}

/** A number literal JSON.stringify cannot write (beyond 2^53, overflowing to Infinity). */
export class RawNumber {
  constructor(readonly text: string) {}
}

/** JSON text with RawNumbers written verbatim; own `__proto__` keys are kept as keys. */
export function toJson(value: unknown): string {
  if (value instanceof RawNumber) return value.text
  if (Array.isArray(value)) return `[${value.map(toJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value)
      .map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`)
      .join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** An object with own prototype-pollution keys (a literal `{__proto__: …}` would set the prototype instead). */
export const protoObject = fc
  .tuple(fc.constantFrom('__proto__', 'constructor', 'prototype'), fc.string({ maxLength: 8 }))
  .map(([key, v]) =>
    Object.fromEntries([
      [
        key,
        Object.fromEntries([
          ['polluted', v],
          ['prototype', { polluted: v }],
        ]),
      ],
      ['x', 1],
    ]),
  )

/** `[[[…]]]` or `{"a":{"a":…}}`, up to `max` levels (kept modest: fast-check prints values recursively). */
export const deepNesting = (max = 400) =>
  fc.tuple(fc.integer({ min: 2, max }), fc.boolean()).map(([depth, arrays]) => {
    let v: unknown = arrays ? [] : {}
    for (let i = 0; i < depth; i++) v = arrays ? [v] : { a: v }
    return v
  })

/** JSON text nested far deeper than any parser's recursion should be trusted with. */
export const deepJsonText = fc
  .tuple(fc.integer({ min: 1_000, max: 100_000 }), fc.constantFrom('[]', '{}', 'mixed'))
  .map(([depth, kind]) => {
    if (kind === '[]') return `${'['.repeat(depth)}${']'.repeat(depth)}`
    if (kind === '{}') return `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`
    return `{"content":${'[{"a":'.repeat(depth)}1${'}]'.repeat(depth)}}`
  })

const BIDI_AND_FRIENDS = [
  '\u202E', // right-to-left override
  '\u200F', // right-to-left mark
  '\u2066', // left-to-right isolate
  '\u200D', // zero-width joiner
  '\uFEFF', // byte order mark
  '\u2028', // line separator (breaks naive JS embedding)
  '\u0301', // combining acute accent
  '\uFFFF', // noncharacter
  '\u{10FFFF}', // last code point
  '\u{1F469}\u200D\u{1F4BB}', // woman technologist (ZWJ sequence)
  'שלום',
  'مرحبا',
  "'; drop table users; --",
  '<script>alert(1)</script>',
  `$\{7*7}{{7*7}}`, // template injection probes
  '../../etc/passwd',
  '%00%ff',
]

/** Well-typed but hostile strings: NUL, lone surrogates, bidi controls, SQL/HTML metacharacters, huge. */
export const hostileString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.constantFrom(...BIDI_AND_FRIENDS), maxLength: 10 }).map((s) => s),
  fc.constantFrom('\u0000', 'a\u0000b', '\uD800', 'x\uDC00y', '\uDBFF\uDBFF', '', ' ', '\t\n', '\u00A0'),
  fc.string({ unit: fc.constantFrom('\u0000', '\uD83D', '\uDE00', 'a', '\u202E'), maxLength: 30 }),
  fc.integer({ min: 1000, max: 70_000 }).map((n) => 'é'.repeat(n)),
)

/** A value the field can never accept, even after Ajv's coercion. */
export function invalidFor(schema: Schema): fc.Arbitrary<unknown> {
  const structural: fc.Arbitrary<unknown>[] = [
    fc.dictionary(fc.string({ minLength: 1, maxLength: 5 }), fc.anything(), { minKeys: 1, maxKeys: 3 }),
    fc.array(fc.anything(), { minLength: 2, maxLength: 5 }),
    deepNesting(),
    protoObject,
  ]
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type
  const extra: fc.Arbitrary<unknown>[] = []
  if (type === 'string') {
    if (schema.maxLength !== undefined) {
      extra.push(fc.integer({ min: 1, max: 20 }).map((n) => 'x'.repeat((schema.maxLength as number) + n)))
    }
    if (schema.format === 'uuid') {
      extra.push(hostileString.filter((s) => !UUID_RE.test(s)))
      extra.push(fc.uuid().map((u) => `${u}\u0000`))
    }
    const allowed = schema.enum ?? (schema.const !== undefined ? [schema.const] : undefined)
    if (allowed) extra.push(fc.string({ minLength: 1, maxLength: 12 }).filter((s) => !allowed.includes(s)))
  } else if (type === 'integer' || type === 'number') {
    extra.push(
      fc.constantFrom(
        new RawNumber('9007199254740993'),
        new RawNumber('1e400'),
        new RawNumber('-1e400'),
        new RawNumber('18446744073709551616'),
      ),
    )
    if (type === 'integer') extra.push(fc.double({ noInteger: true, noDefaultInfinity: true, noNaN: true }))
    if (schema.minimum !== undefined) extra.push(fc.integer({ max: schema.minimum - 1 }))
    if (schema.maximum !== undefined && schema.maximum < Number.MAX_SAFE_INTEGER) {
      // fc.integer's default max is 2^31-1; a maximum above it (a file size) needs its own.
      extra.push(fc.integer({ min: schema.maximum + 1, max: Number.MAX_SAFE_INTEGER }))
    }
    // Ajv coerces any string with `s == +s` (" ", "0x10"): only strings that are no number at all.
    extra.push(fc.string({ minLength: 1, maxLength: 10 }).filter((s) => Number.isNaN(Number(s))))
  } else if (type === 'array') {
    // A scalar would be wrapped into an array by the coercion: use an array with an object in it.
    return fc.oneof(
      fc.dictionary(fc.string({ minLength: 1, maxLength: 5 }), fc.anything(), { minKeys: 1, maxKeys: 3 }),
      fc.array(fc.object(), { minLength: 1, maxLength: 3 }),
      deepNesting(),
    )
  } else if (type === 'object') {
    return fc.oneof(fc.string(), fc.integer(), fc.array(fc.anything(), { minLength: 2 }), fc.constant(null))
  }
  return fc.oneof(...structural, ...extra)
}

/** A value the field accepts (what a correct client would send), to surround the one hostile field. */
export function plausibleFor(schema: Schema, ids: { uuid: string }): unknown {
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type
  if (schema.const !== undefined) return schema.const
  if (schema.enum) return schema.enum[0]
  if (schema.anyOf?.[0]) return plausibleFor(schema.anyOf[0], ids)
  switch (type) {
    case 'string':
      return schema.format === 'uuid' ? ids.uuid : 'plausible'
    case 'integer':
    case 'number':
      return schema.minimum ?? 1
    case 'boolean':
      return true
    case 'array':
      return []
    case 'object':
      return {}
    default:
      return null
  }
}

/**
 * Bodies for an object schema that must be refused: one field replaced by an invalid value, a
 * required field missing, or not an object at all; sometimes with prototype-pollution keys added.
 */
export function invalidBody(schema: Schema, ids: { uuid: string }): fc.Arbitrary<unknown> {
  const props = Object.entries(schema.properties ?? {}).filter(([name]) => name !== 'type')
  const base = () =>
    Object.fromEntries(
      Object.entries(schema.properties ?? {}).map(([name, s]) => [name, plausibleFor(s, ids)]),
    ) as Record<string, unknown>
  const withProto = (body: Record<string, unknown>) =>
    protoObject.map((p) => Object.fromEntries([...Object.entries(p), ...Object.entries(body)]))
  const variants: fc.Arbitrary<unknown>[] = [
    fc.oneof(fc.constant(null), fc.string(), fc.integer(), fc.array(fc.anything(), { minLength: 2 })),
  ]
  if (props.length > 0) {
    const oneBad = fc
      .constantFrom(...props)
      .chain(([name, s]) => invalidFor(s).map((bad) => ({ ...base(), [name]: bad })))
    variants.push(oneBad, oneBad.chain(withProto))
  }
  for (const name of schema.required ?? []) {
    // Ajv fills in a default, so leaving such a field out is fine.
    if (name === 'type' || schema.properties?.[name]?.default !== undefined) continue
    const { [name]: _dropped, ...rest } = base()
    variants.push(fc.constant(rest))
  }
  return fc.oneof(...variants)
}

/** Bodies that are well formed for the schema's keys but carry hostile strings and odd values. */
export function hostileBody(schema: Schema, ids: { uuid: string }): fc.Arbitrary<unknown> {
  const entries = Object.entries(schema.properties ?? {})
  const value = (s: Schema): fc.Arbitrary<unknown> =>
    fc.oneof(
      { weight: 3, arbitrary: hostileString },
      { weight: 1, arbitrary: fc.constant(plausibleFor(s, ids)) },
      { weight: 1, arbitrary: fc.anything() },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          new RawNumber('9007199254740993'),
          0,
          -0,
          Number.MAX_SAFE_INTEGER,
          true,
          null,
        ),
      },
    )
  return fc.record(Object.fromEntries(entries.map(([name, s]) => [name, value(s)])), { requiredKeys: [] })
}

const GRAPHEMES = [
  '\u{1F469}\u200D\u{1F4BB}', // ZWJ sequence
  '\u{1F468}\u200D\u{1F469}\u200D\u{1F467}\u200D\u{1F466}',
  '\u{1F1EB}\u{1F1F7}', // flag: regional indicators
  '\u{1F44D}\u{1F3FD}', // skin tone modifier
  '\u2764\uFE0F', // variation selector
  'e\u0301', // decomposed é: must not be normalized to U+00E9
  '\u00E9', // composed é
  'a\u0308\u0304\u0323', // stacked combining marks
  'Z\u0364\u0351\u0313a\u0316\u034D\u0308l\u036E\u0312g\u0317\u030Co\u0319', // "zalgo"
  'שלום עולם',
  'مرحبا بالعالم',
  '\u202Eevil\u202C', // right-to-left override
  '\u200F\u200E\u2066x\u2069',
  '\uFDFA', // one Arabic ligature code point, very wide
  '\u{1D573}\u{1D58A}\u{1D591}', // mathematical fraktur (astral)
  '漢字かなカナ',
  '\u200B', // zero-width space (not trimmed)
  '\u2028\u2029',
  '\u2126\u03A9', // Ohm sign vs Omega: distinct code points
  '\uFB01', // ligature fi
  '\\"\'<>&amp;',
  '\u{10FFFF}\uFFFD\uFFFE',
]

/** Text a member may send: anything well-formed with no NUL, 1..4000 code points after trimming. */
export const roundTripText = fc
  .array(
    fc.oneof(
      fc.constantFrom(...GRAPHEMES),
      fc.string({ unit: 'grapheme', maxLength: 8 }),
      fc.string({ unit: 'binary', maxLength: 8 }),
      fc.constantFrom(' ', '\t', '\n', '\u00A0', '\uFEFF'),
    ),
    { minLength: 1, maxLength: 30 },
  )
  .map((parts) => parts.join(''))
  .filter((s) => {
    const trimmed = s.trim()
    return trimmed.length > 0 && !trimmed.includes('\u0000') && [...trimmed].length <= 4000
  })
