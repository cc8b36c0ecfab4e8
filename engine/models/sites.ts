/**
 * Hook-site names of either model family, for the analysis and steering code that serves both
 * (hooks.ts holds each family's own names):
 *
 *   gpt2   blocks.{layer}.{site}    site resid_pre | ln2 | resid_post                    (siteName)
 *   llama  layers.{layer}.{site}    site resid_pre | mlp_in | resid_post | {proj}.base|lora (llamaSiteName)
 *
 * resid_pre and resid_post exist in both families, so a bare site does not say which name it gets:
 * files and interventions carry the family where it is 'llama' (absent = 'gpt2', so GPT-2 files are
 * unchanged), and a full name says it by its prefix.
 */
import { type GPT2Site, type LlamaSite, llamaSiteName, parseLlamaSiteName, parseSiteName, siteName } from './hooks';

export type SiteFamily = 'gpt2' | 'llama';
export type AnySite = GPT2Site | LlamaSite;

/** The site's name at `layer` in `family` (default gpt2). */
export function familySiteName(layer: number, site: AnySite, family: SiteFamily = 'gpt2'): string {
  return family === 'llama' ? llamaSiteName(layer, site as LlamaSite) : siteName(layer, site as GPT2Site);
}

/** The inverse of familySiteName: the family from the prefix (blocks. / layers.). */
export function parseFamilySiteName(name: string, nLayer?: number): { family: SiteFamily; layer: number; site: AnySite } {
  if (name.startsWith('layers.')) return { family: 'llama', ...parseLlamaSiteName(name, nLayer) };
  return { family: 'gpt2', ...parseSiteName(name, nLayer) };
}

/** { family: 'llama' } for LLaMA and {} for GPT-2: spread into files so GPT-2's stay byte-identical. */
export const familyField = (family: SiteFamily | undefined): { family?: 'llama' } => (family === 'llama' ? { family: 'llama' } : {});

/**
 * The site as the analysis and steering files type it (GPT2Site): every GPT-2 site, and the LLaMA
 * sites that share a GPT-2 site's meaning and name (resid_pre, resid_post: the paper's LLaMA site).
 * mlp_in and the projection sites are read through LlamaInference's readSites instead.
 */
export function fileSite(site: AnySite, family: SiteFamily): GPT2Site {
  if (family === 'llama' && site !== 'resid_pre' && site !== 'resid_post') {
    throw new Error(`LLaMA site ${site}: the analysis and steering files hold resid_pre or resid_post (the paper's LLaMA site is resid_post)`);
  }
  return site as GPT2Site;
}
