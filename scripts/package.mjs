// Packages the extension as a platform-specific .vsix (vsce --target) for this machine's platform:
// dist/ (bundled by esbuild) plus node_modules/onnxruntime-node with only this platform's native
// binaries (the npm package carries all five platforms, 290 MB; one is 25-86 MB).
// Usage: node scripts/package.mjs [--target linux-x64]; output memgen-lens-<version>-<target>.vsix.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const args = process.argv.slice(2);
const ti = args.indexOf('--target');
const target = ti >= 0 ? args[ti + 1] : `${process.platform === 'win32' ? 'win32' : process.platform}-${process.arch}`;
const [platform, arch] = target.split('-');
const bin = path.join(root, 'node_modules/onnxruntime-node/bin/napi-v6', platform, arch);
if (!fs.existsSync(bin)) {
  console.error(`no onnxruntime-node binaries for ${target} in ${bin}`);
  process.exit(1);
}
for (const f of ['dist/extension.js', 'dist/server.js', 'dist/engine-worker.js', 'dist/runner-worker.js', 'dist/cli.js']) {
  if (!fs.existsSync(path.join(root, f))) {
    console.error(`${f} is missing: run npm run build`);
    process.exit(1);
  }
}
const ignore = fs.readFileSync(path.join(root, '.vscodeignore'), 'utf8') + `\n!node_modules/onnxruntime-node/bin/napi-v6/${platform}/${arch}/**\n`;
const ignoreFile = path.join(os.tmpdir(), `memgen-vscodeignore-${process.pid}`);
fs.writeFileSync(ignoreFile, ignore);
const version = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version;
const out = `memgen-lens-${version}-${target}.vsix`;
try {
  execFileSync(process.execPath, [path.join(root, 'node_modules/@vscode/vsce/vsce'), 'package', '--target', target, '--ignoreFile', ignoreFile, '--skip-license', '--allow-missing-repository', '-o', out], { cwd: root, stdio: 'inherit' });
} finally {
  fs.rmSync(ignoreFile, { force: true });
}
// The name without the target as well, for scripts that expect one file.
fs.copyFileSync(path.join(root, out), path.join(root, `memgen-lens.vsix`));
console.log(`packaged ${out} (and memgen-lens.vsix)`);
