// Packs a plain-JS extension folder into a .vsix (the harness's self-test fixture), offline and
// without vsce: a .vsix is a zip of extension/** plus two small XML files. Uses the zip writer
// (yazl) that ships inside code-server. Usage: node make-vsix.js <extensionFolder> <out.vsix>
const fs = require('node:fs');
const path = require('node:path');
const yazl = require(path.join(__dirname, '../node_modules/code-server/lib/vscode/node_modules/yazl'));

const [, , dir, out] = process.argv;
const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;');
const manifest = `<?xml version="1.0" encoding="utf-8"?>
<PackageManifest Version="2.0.0" xmlns="http://schemas.microsoft.com/developer/vsx-schema/2011">
  <Metadata>
    <Identity Language="en-US" Id="${esc(pkg.name)}" Version="${esc(pkg.version)}" Publisher="${esc(pkg.publisher)}" />
    <DisplayName>${esc(pkg.displayName || pkg.name)}</DisplayName>
    <Description xml:space="preserve">${esc(pkg.description || '')}</Description>
    <Properties><Property Id="Microsoft.VisualStudio.Code.Engine" Value="${esc(pkg.engines.vscode)}" /></Properties>
  </Metadata>
  <Installation><InstallationTarget Id="Microsoft.VisualStudio.Code" /></Installation>
  <Dependencies />
  <Assets><Asset Type="Microsoft.VisualStudio.Code.Manifest" Path="extension/package.json" Addressable="true" /></Assets>
</PackageManifest>
`;
const types = `<?xml version="1.0" encoding="utf-8"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension=".json" ContentType="application/json" /><Default Extension=".js" ContentType="application/javascript" /><Default Extension=".vsixmanifest" ContentType="text/xml" /></Types>
`;
const zip = new yazl.ZipFile();
zip.addBuffer(Buffer.from(types), '[Content_Types].xml');
zip.addBuffer(Buffer.from(manifest), 'extension.vsixmanifest');
const walk = (rel) => {
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) { if (e.name !== 'workspace' && e.name !== 'node_modules') walk(r); }
    else zip.addFile(path.join(dir, r), `extension/${r}`);
  }
};
walk('');
zip.outputStream.pipe(fs.createWriteStream(out)).on('close', () => console.log(`packed ${out}`));
zip.end();
