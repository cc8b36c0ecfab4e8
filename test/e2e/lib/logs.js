// The MemGen output channel as code-server writes it: every memgen.log under a profile's logs folder.
const fs = require('node:fs');
const path = require('node:path');

/** The MemGen log files under `logsDir` (none when it does not exist yet). */
exports.memgenLogFiles = (logsDir) => {
  const files = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/memgen\.log$/i.test(e.name)) files.push(p);
    }
  };
  if (fs.existsSync(logsDir)) walk(logsDir);
  return files;
};

/** Their lines, in file order. */
exports.memgenLogLines = (logsDir) => exports.memgenLogFiles(logsDir).flatMap((f) => fs.readFileSync(f, 'utf8').split('\n'));
