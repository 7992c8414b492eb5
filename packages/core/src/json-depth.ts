// How deep a JSON text nests, counted without recursion. The JSON files and lines s2s reads are
// refused past serde_json's default limit (what Hugging Face's Rust readers, tokenizers and
// safetensors, parse with) before anything walks them recursively: JSON.stringify writing a kept
// value back, or a library building nested objects, would overflow the stack.

/** The deepest nesting of objects and arrays accepted in JSON a user hands s2s. */
export const MAX_JSON_DEPTH = 128;

/** How deep objects and arrays nest in JSON text (strings skipped); stops counting past `limit`. */
export function jsonNestingDepth(text: string, limit = MAX_JSON_DEPTH): number {
  let depth = 0;
  let max = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      i++;
      while (i < text.length && text.charCodeAt(i) !== 0x22) i += text.charCodeAt(i) === 0x5c ? 2 : 1;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max && (max = depth) > limit) return max;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

/** The refusal's wording, the same in every file's error. */
export const tooDeep = (limit = MAX_JSON_DEPTH) => `nests objects and arrays more than ${limit} deep (corrupt or hostile)`;
