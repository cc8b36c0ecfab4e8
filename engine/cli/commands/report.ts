/**
 * `memgen report`: one self-contained HTML page of a run (engine/report/html.ts) and its figures as
 * .svg files beside it. Reads only; sections whose files are missing say how to make them.
 */
import * as path from 'node:path';
import { writeReport } from '../../report/html';
import { steeringVerdict } from '../../report/verdict';
import { parse, required, str } from '../args';

export const REPORT_HELP = `  report    One self-contained HTML page of a run (inline SVG, no scripts, no external resources): the run,
            the NMD heatmap (the paper's Figure 2), probe accuracy by layer, the steering table beside the
            paper's Table 1 with a verdict, the sweep, and where every number came from; figures also as .svg.
            --run RUN [--out FILE.html (RUN/report/index.html)]`;

export async function reportCommand(argv: string[]): Promise<number> {
  const v = parse(argv, { run: { type: 'string' }, out: { type: 'string' } });
  const run = required(v.run, 'run');
  const r = writeReport(run, { out: str(v.out, 'out') });
  const rel = (f: string) => {
    const r = path.relative(process.cwd(), f);
    return r && !r.startsWith('..') && !path.isAbsolute(r) ? r : f;
  };
  console.log(`wrote ${rel(r.html)}`);
  if (r.figures.length > 0) console.log(`figures: ${r.figures.map(rel).join(', ')}`);
  const d = r.data;
  const missing = [!d.summary && 'analysis (memgen analyze)', !d.steering && 'steering table (memgen steer-eval)', !d.sweep && 'sweep (memgen sweep)'].filter(Boolean);
  if (missing.length > 0) console.log(`not in the report yet: ${missing.join(', ')}`);
  if (d.steering) console.log(steeringVerdict(d.steering).line);
  for (const s of d.stale) console.log(`warning: ${s}`);
  for (const p of d.problems) console.log(`warning: ${p}`);
  return 0;
}
