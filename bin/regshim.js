#!/usr/bin/env -S MALLOC_ARENA_MAX=2 MALLOC_TRIM_THRESHOLD_=67108864 node --max-semi-space-size=1
// Runs the compiled CLI; `npm install` builds it (the prepare script).
// The shebang sets what streaming needs and can only be set at launch (README, Performance):
// a 1 MiB young generation, so dead body buffers are collected within a megabyte or so;
// glibc keeping up to 64 MiB of freed heap instead of returning it to the kernel and
// faulting it back in on the next reads; two malloc arenas instead of one per thread.
import { main } from '../dist/cli.js';

await main(process.argv);
