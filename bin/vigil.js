#!/usr/bin/env node
// The published package ships compiled JS in dist/; a checkout runs the TypeScript
// sources directly through Node's type stripping.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
await import(existsSync(compiled) ? compiled.href : new URL('../src/cli/main.ts', import.meta.url).href);
