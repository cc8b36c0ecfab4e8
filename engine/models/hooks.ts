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

/**
 * LLaMA hook sites (engine/models/llama.ts), named `layers.{layer}.{site}` after the Hugging Face
 * module path model.layers.{i}:
 *
 *   layers.{i}.resid_pre          the residual stream entering decoder layer i                 [d]
 *   layers.{i}.mlp_in             the output of post_attention_layernorm, the MLP's input      [d]
 *   layers.{i}.resid_post         the residual stream leaving layer i: the decoder layer's output,
 *                                 after the MLP, with the adapter applied. The paper's LLaMA site
 *                                 (method.md section 4) and the default.                      [d]
 *   layers.{i}.{proj}.base        the frozen projection's output x W^T                         [out]
 *   layers.{i}.{proj}.lora        the adapter's output (alpha / r) B A x (only where a LoRA
 *                                 adapter targets proj)                                        [out]
 *                                 proj one of q_proj k_proj v_proj o_proj gate_proj up_proj down_proj;
 *                                 the projection's output is base + lora (method.md section 7).
 * Steering adds to a site exactly as for GPT-2 (h_site += steer_i).
 */
export const LLAMA_PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type LlamaProjection = (typeof LLAMA_PROJECTIONS)[number];
export type LlamaSite = 'resid_pre' | 'mlp_in' | 'resid_post' | `${LlamaProjection}.base` | `${LlamaProjection}.lora`;

/** Every LLaMA site of a layer. */
export const LLAMA_SITES: readonly LlamaSite[] = [
  'resid_pre', 'mlp_in', 'resid_post',
  ...LLAMA_PROJECTIONS.flatMap((p) => [`${p}.base`, `${p}.lora`] as LlamaSite[]),
];

export const DEFAULT_LLAMA_SITE: LlamaSite = 'resid_post';

export function isLlamaSite(s: string): s is LlamaSite {
  return (LLAMA_SITES as readonly string[]).includes(s);
}

const LLAMA_FORMS = 'valid names are layers.{layer}.{site} with site resid_pre, mlp_in, resid_post or {proj}.base / {proj}.lora (e.g. layers.0.resid_post, layers.3.q_proj.lora)';

/** `layers.{layer}.{site}`, e.g. llamaSiteName(7, 'q_proj.lora') = 'layers.7.q_proj.lora'. */
export function llamaSiteName(layer: number, site: LlamaSite): string {
  if (!Number.isInteger(layer) || layer < 0) throw new Error(`hook layer must be a non-negative integer, got ${layer}`);
  if (!isLlamaSite(site)) throw new Error(`unknown LLaMA hook site '${site}'; ${LLAMA_FORMS}`);
  return `layers.${layer}.${site}`;
}

/** The inverse of llamaSiteName; `nLayer`, when given, bounds the layer. */
export function parseLlamaSiteName(name: string, nLayer?: number): { layer: number; site: LlamaSite } {
  const m = /^layers\.(0|[1-9][0-9]*)\.([a-z_.]+)$/.exec(name);
  if (!m) throw new Error(`'${name}' is not a LLaMA hook name; ${LLAMA_FORMS}`);
  const layer = Number(m[1]);
  if (!isLlamaSite(m[2])) throw new Error(`'${name}': unknown site '${m[2]}'; ${LLAMA_FORMS}`);
  if (nLayer !== undefined && layer >= nLayer) throw new Error(`'${name}': layer ${layer} does not exist; the model has layers 0..${nLayer - 1}`);
  return { layer, site: m[2] };
}

/**
 * Where a steer vector is added: 'all' = the last prompt position and every generated position (the
 * paper's, method.md section 6); 'prompt' = the last prompt position only (the decision's position:
 * the generated tokens' positions are left as the model computes them).
 */
export type SteerAt = 'all' | 'prompt';
export const STEER_AT: readonly SteerAt[] = ['all', 'prompt'];
