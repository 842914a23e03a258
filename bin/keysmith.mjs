#!/usr/bin/env node
// The keysmith CLI: loads its TypeScript sources through tsx (a dependency), so no build step is needed.
import { register } from 'tsx/esm/api';

register();
const { run } = await import('../cli/main.ts');
process.exitCode = await run(process.argv.slice(2));
