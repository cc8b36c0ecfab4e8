/**
 * Which run a panel shows when the run list arrives: the panel's saved choice when it is still
 * listed, else the extension's suggestion (the default run), else the first analysed run.
 */
import type { RunInfo } from '../../../server/src/protocol';

export function chooseRun(runs: RunInfo[], saved: string, suggested: string | null): string | null {
  if (saved && runs.some((r) => r.dir === saved)) return saved;
  if (suggested && runs.some((r) => r.dir === suggested)) return suggested;
  return runs.find((r) => r.analysed)?.dir ?? runs[0]?.dir ?? null;
}
