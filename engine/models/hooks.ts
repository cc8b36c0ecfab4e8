/**
 * GPT-2 hook sites: the places where an activation can be read (and steered), each with one stable
 * dotted name in TransformerLens style, `blocks.{layer}.{site}`. This is the published list; every
 * number the product shows carries one of these names.
 *
 *   blocks.{i}.resid_pre   the residual stream entering block i (block 0: token + position embedding)
 *   blocks.{i}.ln2         the output of block i's ln_2: the normalised residual stream after attention,
 *                          the input of the MLP. The paper's site (method.md section 4) and the default.
 *   blocks.{i}.resid_post  the residual stream leaving block i (= resid_pre of block i + 1)
 *
 * Each is a vector of shape [d] (d = n_embd) per token; the representation of an input is the site's
 * vector at the last prompt token. Steering a site adds to it (engine/models/gpt2-infer.ts): at ln2 it
 * changes only the MLP input of that block (the residual stream keeps the unsteered ln_2 input); at
 * resid_pre / resid_post it changes the residual stream itself, so the shift is carried forward.
 */

export type GPT2Site = 'resid_pre' | 'ln2' | 'resid_post';

/** Every site of a block, in the order the forward pass meets them. */
export const GPT2_SITES: readonly GPT2Site[] = ['resid_pre', 'ln2', 'resid_post'];

export const DEFAULT_SITE: GPT2Site = 'ln2';

export function isGPT2Site(s: string): s is GPT2Site {
  return (GPT2_SITES as readonly string[]).includes(s);
}

/** `blocks.{layer}.{site}`, e.g. siteName(7, 'ln2') = 'blocks.7.ln2'. */
export function siteName(layer: number, site: GPT2Site): string {
  if (!Number.isInteger(layer) || layer < 0) throw new Error(`hook layer must be a non-negative integer, got ${layer}`);
  if (!isGPT2Site(site)) throw new Error(`unknown hook site '${site}'; the sites are ${GPT2_SITES.join(', ')}`);
  return `blocks.${layer}.${site}`;
}

const VALID_FORMS = `valid names are blocks.{layer}.{site} with site one of ${GPT2_SITES.join(', ')} (e.g. blocks.0.ln2)`;

/** The inverse of siteName; `nLayer`, when given, bounds the layer. Errors name the valid forms. */
export function parseSiteName(name: string, nLayer?: number): { layer: number; site: GPT2Site } {
  const m = /^blocks\.(0|[1-9][0-9]*)\.([a-z_0-9]+)$/.exec(name);
  if (!m) throw new Error(`'${name}' is not a hook name; ${VALID_FORMS}`);
  const layer = Number(m[1]);
  const site = m[2];
  if (!isGPT2Site(site)) throw new Error(`'${name}': unknown site '${site}'; ${VALID_FORMS}`);
  if (nLayer !== undefined && layer >= nLayer) {
    throw new Error(`'${name}': layer ${layer} does not exist; the model has layers 0..${nLayer - 1}`);
  }
  return { layer, site };
}
