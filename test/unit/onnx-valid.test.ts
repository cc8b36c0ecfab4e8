/**
 * Our ONNX files are valid ONNX for Python users: the onnx package's checker (with full shape
 * inference) accepts them. Optional: runs where Debian's python3-onnx is installed (CI installs it).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Graph, ops } from '../../engine/graph';
import { copyDemoConfig, COPY_DEMO_DEFAULTS } from '../../engine/demo/copy-demo';
import { gpt2Forward, gpt2ParamInputs } from '../../engine/models/gpt2';
import { addLossAndGradients } from '../../engine/train/step';

const PY = '/usr/bin/python3';
const hasOnnx = (() => {
  try {
    execFileSync(PY, ['-c', 'import onnx'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

function check(g: Graph): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-onnx-'));
  const file = path.join(dir, 'model.onnx');
  fs.writeFileSync(file, g.toOnnx());
  try {
    return execFileSync(PY, ['-c', `import onnx, sys
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
print('ok', m.ir_version, m.opset_import[0].version, len(m.graph.node))`, file], { encoding: 'utf8' });
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
}

describe.skipIf(!hasOnnx)('ONNX validity (python3-onnx checker)', () => {
  it('accepts the one-block GPT-2 training graph with all its gradient nodes', () => {
    const o = { ...COPY_DEMO_DEFAULTS, batch: 4 };
    const cfg = copyDemoConfig(o);
    const g = new Graph('gpt2_train');
    const ids = g.input('ids', [o.batch, 16], 'int64');
    const targets = g.input('targets', [o.batch, 16], 'int64');
    addLossAndGradients(g, ops.crossEntropy(gpt2Forward(cfg, gpt2ParamInputs(g, cfg), ids), targets));
    expect(check(g)).toMatch(/^ok 8 17 \d+/);
  });

  it('accepts graphs with symbolic dims', () => {
    const g = new Graph('sym');
    const x = g.input('x', ['batch', 'seq', 8]);
    const w = g.input('w', [8, 4]);
    g.output(ops.softmax(ops.matmul(x, w)), 'y');
    expect(check(g)).toMatch(/^ok/);
  });
});
