import { defineConfig } from 'vitest/config';

// isolated-vm wants --no-node-snapshot on Node >= 20 (not allowed in NODE_OPTIONS), so tests run in
// forked workers that get it on their command line.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    execArgv: ['--no-node-snapshot'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    reporters: ['default'],
  },
});
