import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Kills process groups a dead test worker left behind (test/support/processes.ts).
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // e2e suites share containerd and the machine's two cores: run files one at a time.
    fileParallelism: false,
    reporters: ['default'],
  },
});
