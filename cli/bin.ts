#!/usr/bin/env node
/** The `keysmith` executable of `@keysmith/cli` (bundled by scripts/packages.ts, run by plain node). */
import { run } from './main.ts';

process.exitCode = await run(process.argv.slice(2));
