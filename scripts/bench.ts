// `npm run bench -- NAME [args]` runs bench/NAME.ts; the benchmark prints its JSON line last.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

const [name, ...rest] = process.argv.slice(2);
const available = readdirSync(new URL('../bench/', import.meta.url))
  .filter((file) => file.endsWith('.ts') && !file.startsWith('_'))
  .map((file) => file.slice(0, -3));
if (!name || !existsSync(new URL(`../bench/${name}.ts`, import.meta.url))) {
  process.stderr.write(`usage: npm run bench -- NAME   (one of: ${available.join(', ') || 'none yet'})\n`);
  process.exit(2);
}
const result = spawnSync(
  process.execPath,
  ['--expose-gc', new URL(`../bench/${name}.ts`, import.meta.url).pathname, ...rest],
  {
    stdio: 'inherit',
  },
);
process.exit(result.status ?? 1);
