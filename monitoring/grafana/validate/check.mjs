// Type-check every dashboard JSON given on the command line (default: ../dashboards/*.json)
// against types.ts with the TypeScript compiler. Exit 0 if all pass, 1 with the errors.
import { readdirSync, readFileSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const here = dirname(fileURLToPath(import.meta.url));
const gen = join(here, '.gen');
const args = process.argv.slice(2);
const files = args.length
  ? args.map((f) => resolve(f))
  : readdirSync(join(here, '..', 'dashboards'))
      .filter((f) => f.endsWith('.json'))
      .map((f) => join(here, '..', 'dashboards', f));

rmSync(gen, { recursive: true, force: true });
mkdirSync(gen);
for (const file of files) {
  const json = JSON.parse(readFileSync(file, 'utf8'));
  const name = basename(file, '.json').replace(/[^A-Za-z0-9]/g, '_');
  writeFileSync(
    join(gen, `${name}.ts`),
    `import type { SealchatDashboard } from '../types';\n` +
      `export const ${name} = ${JSON.stringify(json, null, 2)} satisfies SealchatDashboard;\n`,
  );
}

const config = ts.getParsedCommandLineOfConfigFile(join(here, 'tsconfig.json'), {}, {
  ...ts.sys,
  onUnRecoverableConfigFileDiagnostic: (d) => {
    throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  },
});
const program = ts.createProgram(config.fileNames, config.options);
const diagnostics = ts.getPreEmitDiagnostics(program);
if (diagnostics.length) {
  const host = { getCanonicalFileName: (f) => f, getCurrentDirectory: () => here, getNewLine: () => '\n' };
  process.stderr.write(ts.formatDiagnostics(diagnostics, host));
  process.exit(1);
}
console.log(`${files.length} dashboard(s) match @grafana/schema`);
